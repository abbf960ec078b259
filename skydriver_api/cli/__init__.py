"""The ``skydriver`` command line: services, REST client, physics tools and products.

Each concern registers its commands from its own module (one module per group of tools).
:func:`run` is the entry point: a usage error (a bad option value, a missing file) is one line
and exit code 2, as are the commands' own checks; an unexpected error is one line and exit code
1, with the traceback only when ``SKYDRIVER_DEBUG`` is set.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer
from pydantic import ValidationError

try:  # typer now ships its own copy of click; its exceptions are not click's
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - a typer that still uses click
    from click import exceptions as click_errors  # type: ignore[no-redef]

from skydriver_api.cli import client, ops, physics, products, service, streams
from skydriver_api.cli.common import BAD_INPUT, print_error

app = typer.Typer(
    name="skydriver",
    help="SkyDriver: reconstruct where a neutrino came from, one HEALPix pixel at a time.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)

for module in (service, client, ops, physics, products, streams):
    module.register(app)


def package_version() -> str:
    try:
        return version("skydriver")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"skydriver {package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """SkyDriver: reconstruct where a neutrino came from, one HEALPix pixel at a time."""


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: sys.argv); returns the exit code."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="skydriver", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as err:  # a group alone: its help
        typer.echo(err.ctx.get_help() if err.ctx else "")
        return BAD_INPUT
    except click_errors.UsageError as err:
        hint = f" (see '{err.ctx.command_path} --help')" if err.ctx else ""
        print_error(err.format_message() + hint)
        return BAD_INPUT
    except click_errors.ClickException as err:
        print_error(err.format_message())
        return err.exit_code
    except typer.Abort:
        print_error("aborted")
        return 1
    except ValidationError as err:  # settings from the environment (or a file) that do not hold
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in err.errors()
        )
        print_error(f"invalid configuration: {problems}")
        return BAD_INPUT
    except Exception as err:  # a bug: one line unless asked for the traceback
        if os.environ.get("SKYDRIVER_DEBUG"):
            raise
        print_error(f"{type(err).__name__}: {err} (SKYDRIVER_DEBUG=1 shows the traceback)")
        return 1
    return code if isinstance(code, int) else 0


def main() -> None:
    sys.exit(run())
