"""Infrastructure the shells share (never imported by the core): settings, logging, retry."""
