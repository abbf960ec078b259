"""skyscan: SkyDriver's domain core (no network I/O), in subpackages by concern.

* ``physics``: the event format, detector geometry, hit cleaning, ice and photon PDFs, recos, simulation
* ``sky``: HEALPix pixels and coordinates
* ``refinement``: fit records, strategies (progression, contour), the state machine, one drive loop
* ``skymap``: result assembly, multi-order maps, error regions, exports
* ``readers``: IceCube realtime formats
* ``records``: the scan specification, the scan record and its state machine, the pixel-result record
* ``wire``: the versioned task and result messages

The server, worker and API are thin I/O shells around it.
"""

__version__ = "0.1.0"
