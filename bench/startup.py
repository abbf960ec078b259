#!/usr/bin/env python3
"""CPU a process spends starting, per kind of process: what every cold scan pays before its first fit.

    .venv/bin/python bench/startup.py [--repeat 5] [--compare REV]

Each probe is a fresh interpreter that imports what that process imports and does its warm-up
(the server's astrometry tables; a fit process's reco modules and the reco's own warm-up), and
reports its own CPU time (``time.process_time``); the median of ``--repeat`` runs is printed. With
``--compare REV`` the same probes also run, interleaved, in a temporary ``git worktree`` of REV
(same virtualenv), and the ratio this tree / REV is printed: both sides measured in one run. A
first round compiles the bytecode and is not counted.
Needs no services.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import machine_line  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _fit_process(reco: str) -> str:
    # Before the lazy reco registry a fit process imported every reco with the worker's modules and
    # warmed up without names (``warm_up()`` took none): an older tree gets that call.
    return (
        "import inspect, worker.__main__; from worker.fitter import warm_up; "
        f"warm_up([{reco!r}]) if inspect.signature(warm_up).parameters else warm_up()"
    )


# (process, code run after the clock starts); a fit process re-imports the worker's main module
# (multiprocessing's spawn) and then warms up for its reco
PROBES: dict[str, str] = {
    "API (skydriver api)": (
        "import skydriver_api.cli, skydriver_api.app; from skydriver_api.settings import ApiSettings; "
        "from skyscan.physics.recos import registry; "
        "getattr(registry, 'load_recos', lambda names: None)(ApiSettings().recos())"  # older trees: none
    ),
    "scan server": (
        "import server.__main__; from skyscan.sky.coordinates import astrometry_context; "
        "astrometry_context(51544.5)"
    ),
    "worker process": "import worker.__main__",
    **{f"fit process, {reco}": _fit_process(reco) for reco in ("dummy", "pandel-mpe", "table-spe")},
}

_RUN = """
import time, json
t = time.process_time()
exec({code!r})
print(json.dumps(time.process_time() - t))
"""


def cpu_s(tree: Path, code: str) -> float:
    run = subprocess.run(
        [sys.executable, "-c", _RUN.format(code=code)],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(run.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compare", metavar="REV", help="also measure this git revision, interleaved")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    machine = machine_line()
    trees = {"this tree": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        if args.compare:
            old = Path(tmp) / "compare"
            added = subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.compare],
                capture_output=True,
                text=True,
            )
            if added.returncode != 0:
                parser.error(f"--compare {args.compare}: {added.stderr.strip()}")
            trees[args.compare] = old
        try:
            samples: dict[tuple[str, str], list[float]] = {(p, t): [] for p in PROBES for t in trees}
            for round_ in range(args.repeat + 1):  # round 0 compiles the bytecode: not counted
                for probe, code in PROBES.items():
                    for label, tree in trees.items():
                        cpu = cpu_s(tree, code)
                        if round_:
                            samples[(probe, label)].append(cpu)
        finally:
            if args.compare:
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False
                )
    print(machine)
    columns = [f"{t} (s CPU)" for t in trees] + (["ratio"] if args.compare else [])
    head = "| process | " + " | ".join(columns) + " |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for probe in PROBES:
        medians = [statistics.median(samples[(probe, t)]) for t in trees]
        row = f"| {probe} | " + " | ".join(f"{m:.2f}" for m in medians)
        print(row + (f" | {medians[0] / medians[1]:.2f} |" if args.compare else " |"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
