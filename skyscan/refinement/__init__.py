"""Refinement: which pixels to fit next. Fit records, strategies, the state machine, one drive loop."""
