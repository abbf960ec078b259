"""Recos: likelihood fits with the direction fixed. Names are looked up in :mod:`.registry`."""
