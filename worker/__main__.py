"""``python -m worker --scan-id ID``: fit pixel tasks of one scan (started by a launcher).

``python -m worker --warm --status-fd N``: start and warm up (imports, the fit process) without a
scan, then serve the scans of the claims on standard input one at a time (``skyinfra.warm``).
"""

from __future__ import annotations

import argparse
import sys

from skyinfra.logs import setup_logging
from skyinfra.warm import serve_claims
from worker.fitter import Fitter
from worker.run import Worker
from worker.settings import WorkerSettings


def _run(scan_id: str, fitter: Fitter | None) -> int:
    try:
        worker = Worker(WorkerSettings(), scan_id)
    except (ValueError, OSError) as err:  # no scan key or broker file: say so, no traceback
        print(f"skydriver worker: {err}", file=sys.stderr, flush=True)
        return 2
    return worker.run(fitter) if fitter is not None else worker.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skydriver worker", description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--scan-id")
    group.add_argument("--warm", action="store_true", help="warm up, then serve claimed scans in turn")
    parser.add_argument("--status-fd", type=int, help="with --warm: where to report each scan's end")
    args = parser.parse_args(argv)
    if not args.warm:
        setup_logging("worker", args.scan_id)
        return _run(args.scan_id, None)
    if args.status_fd is None:
        parser.error("--warm needs --status-fd")
    fitter = Fitter()
    fitter.start()

    def serve(scan_id: str) -> int:
        setup_logging("worker", scan_id)
        return _run(scan_id, fitter)

    try:
        return serve_claims(serve, args.status_fd)
    finally:
        fitter.close()


if __name__ == "__main__":
    sys.exit(main())
