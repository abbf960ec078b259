"""The ``skydriver`` command line: services, REST client, physics tools and products.

Each concern registers its commands from its own module (one module per group of tools).
"""

from __future__ import annotations

import typer

from skydriver_api.cli import client, ops, physics, products, service, streams

app = typer.Typer(
    name="skydriver",
    help="SkyDriver: reconstruct where a neutrino came from, one HEALPix pixel at a time.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

for module in (service, client, ops, physics, products, streams):
    module.register(app)


def main() -> None:
    app()
