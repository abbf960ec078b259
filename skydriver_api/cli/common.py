"""Shared CLI helpers: one-line errors, checks of options made before any work, progress, printing.

Exit codes: 2 for bad input (an option, a file, a request the API refused as invalid), which
changes nothing; 1 for a failure while working (API unreachable or failing, a scan that failed).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

console = Console(stderr=False)
err_console = Console(stderr=True)

BAD_INPUT = 2
# API answers that mean the request itself was wrong (nothing was changed)
REFUSED_STATUSES = (400, 413, 422)


def print_error(message: str) -> None:
    """``error: message`` as one line on stderr (never wrapped, no markup read in the message)."""
    err_console.print(Text.assemble(("error:", "red"), " ", " ".join(str(message).split())), soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    print_error(message)
    raise typer.Exit(code)


def refuse(message: str) -> NoReturn:
    """Bad input: a one-line error and exit code 2."""
    fail(message, BAD_INPUT)


def fail_api(err: Any) -> NoReturn:
    """An ApiError: exit 2 when the API refused the request as invalid, else 1."""
    fail(str(err), BAD_INPUT if getattr(err, "status", 0) in REFUSED_STATUSES else 1)


def warn(message: str) -> None:
    err_console.print(Text.assemble(("warning:", "yellow"), " ", message), soft_wrap=True)


def output_file(path: Path, option: str = "--output") -> Path:
    """Check, before any work, that a file can be written at ``path`` (its folder is made)."""
    if str(path) == "-":
        return path
    if path.is_dir():
        refuse(f"{option}: {path} is a folder; give a file name")
    _make_folder(path.parent, option)
    return path


def output_dir(path: Path, option: str = "--out") -> Path:
    """Check, before any work, that ``path`` is (or can be made) a writable folder."""
    if path.exists() and not path.is_dir():
        refuse(f"{option}: {path} is a file, not a folder")
    _make_folder(path, option)
    return path


def _make_folder(folder: Path, option: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        refuse(f"{option}: cannot make the folder {folder}: {err.strerror or err}")
    if not os.access(folder, os.W_OK):
        refuse(f"{option}: the folder {folder} is not writable")


def product_formats(spec: str, option: str = "--formats") -> list[str]:
    """Comma-separated product formats, each checked against the exporters' registry."""
    from skyscan.skymap.exports import FORMATS

    names = list(dict.fromkeys(f.strip() for f in spec.split(",") if f.strip()))
    unknown = [f for f in names if f not in FORMATS]
    if unknown:
        refuse(f"{option}: unknown format {', '.join(map(repr, unknown))}; known: {', '.join(FORMATS)}")
    return names


def product_format(fmt: str, option: str = "--format") -> str:
    from skyscan.skymap.exports import FORMATS

    if fmt not in FORMATS:
        refuse(f"{option}: unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    return fmt


def load_event_file(path: Path) -> Any:
    """An open-format event file, validated (bad files are refused naming the field)."""
    from skyscan.physics.event import EventFormatError, load_event

    try:
        return load_event(path)
    except (EventFormatError, UnicodeDecodeError) as err:
        refuse(f"{path}: {err}")
    except OSError as err:
        refuse(f"{path}: {err.strerror or err}")


def check_strategy(strategy: str, nsides: str, level_set: str | None = None) -> None:
    """The refinement strategy and its nsides, as the API will check them."""
    from skyscan.refinement.strategies import make_strategy

    try:
        make_strategy(strategy, nsides, level_set=level_set)
    except ValueError as err:
        refuse(f"--nsides/--strategy: {err}")


def follow_scan(client: Any, scan_id: str, timeout_s: float = 3600) -> dict[str, Any]:
    """Follow a scan with a progress bar until it ends (Server-Sent Events, polling as a fallback)."""
    from skydriver_api.client import ApiError, progress_fraction

    with Progress(
        TextColumn("[bold]{task.fields[state]:<9}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} fits"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("scan", total=1, state="queued", rate="")

        def show(state: str, progress: dict[str, Any]) -> None:
            done, total = progress_fraction({"progress": progress})
            rate = progress.get("rate_per_s")
            bar.update(task, completed=done, total=total, state=state, rate=f"{rate:.0f}/s" if rate else "")

        try:
            for event, data in client.events(scan_id, timeout_s=timeout_s):
                if event == "progress":
                    show(data["state"], data)
                elif event == "state":
                    bar.update(task, state=data["state"])
        except ApiError:  # no event stream (an older API, a buffering proxy): poll instead
            for status in client.watch(scan_id, timeout_s=timeout_s):
                show(status["state"], status.get("progress") or {})
        status = client.scan(scan_id)
        show(status["state"], status.get("progress") or {})
    return status


def warn_unresolved(result: dict[str, Any]) -> None:
    """The result's ``regions.unresolved`` flag, as a warning line."""
    flag = (result.get("regions") or {}).get("unresolved")
    if flag:
        warn(flag["message"])


def print_best_fit(result: dict[str, Any]) -> None:
    best = result.get("best_fit")
    if not best:
        console.print("no best fit (every pixel failed)")
        return
    console.print(
        f"best fit: RA {best['ra_deg']:.3f} deg, Dec {best['dec_deg']:+.3f} deg "
        f"(zenith {best['zenith_deg']:.3f}, azimuth {best['azimuth_deg']:.3f} deg), "
        f"-lnL {best['llh']:.3f} at nside {best['nside']}"
    )
    truth = result.get("truth")
    if truth:
        d2 = truth.get("delta_2llh")
        console.print(
            f"truth offset: {truth['offset_deg']:.3f} deg" + (f", 2*dLLH {d2:.2f}" if d2 is not None else "")
        )
    warn_unresolved(result)


def scan_id_column() -> Any:
    """The scan id column of a table: ids are copied from it, so it is never cut or wrapped."""
    from rich.table import Column

    return Column("scan id", no_wrap=True, min_width=32)
