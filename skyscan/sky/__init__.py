"""The sky: HEALPix pixels and coordinates (detector frame <-> equatorial)."""
