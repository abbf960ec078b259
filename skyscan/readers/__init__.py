"""Readers of IceCube formats: realtime alert files (i3live JSON, pickled frames), SuperDST."""
