"""skyscan: SkyDriver's domain library (no network I/O).

Event model, HEALPix pixel helpers, refinement strategies, recos, wire-message schemas,
skymap assembly and exports. The server, worker and API are thin I/O shells around it.
"""

__version__ = "0.1.0"
