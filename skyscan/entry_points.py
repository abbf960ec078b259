"""Registry entries written as ``"package.module:attribute"``, imported when first needed.

The reco, refinement-strategy, export and launcher registries name their implementations this way,
so a registry can list what exists without importing it (a launcher's client library, the table
recos' scipy) and a misspelt entry fails with the entry in the message.
"""

from __future__ import annotations

import importlib
from typing import Any


def load_entry(target: str) -> Any:
    """The attribute ``target`` names, its module imported now; ValueError for a malformed or
    missing entry (an ImportError of the module itself propagates: that is a broken install)."""
    module, sep, attribute = target.partition(":")
    if not (sep and module and attribute):
        raise ValueError(f"registry entry {target!r} is not 'module:attribute'")
    try:
        return getattr(importlib.import_module(module), attribute)
    except AttributeError:
        raise ValueError(f"registry entry {target!r}: {module} has no {attribute!r}") from None
