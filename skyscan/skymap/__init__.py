"""Skymaps: assembly of the result, multi-order maps, error regions (contours), exports."""
