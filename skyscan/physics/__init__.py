"""The physics: events, detector geometry, hit cleaning, ice and photon PDFs, recos, simulation."""
