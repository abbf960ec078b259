"""Records: what a scan asks for (the scan specification), the scan record with its state machine,
and the pixel-result record. Pure models; the persistence layer (``skyinfra.store``) stores them."""
