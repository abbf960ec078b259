"""Shared CLI helpers: console, errors, progress bar, best-fit printing."""

from __future__ import annotations

from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=False)
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


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
