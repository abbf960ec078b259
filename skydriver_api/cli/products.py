"""Commands of this group are registered by ``register``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    return None
