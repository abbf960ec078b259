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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skydriver worker", description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--scan-id")
    group.add_argument("--warm", action="store_true", help="warm up, then serve claimed scans in turn")
    parser.add_argument("--status-fd", type=int, help="with --warm: where to report each scan's end")
    args = parser.parse_args(argv)
    if not args.warm:
        setup_logging("worker", args.scan_id)
        return Worker(WorkerSettings(), args.scan_id).run()
    if args.status_fd is None:
        parser.error("--warm needs --status-fd")
    fitter = Fitter()
    fitter.start()

    def serve(scan_id: str) -> int:
        setup_logging("worker", scan_id)
        return Worker(WorkerSettings(), scan_id).run(fitter)

    try:
        return serve_claims(serve, args.status_fd)
    finally:
        fitter.close()


if __name__ == "__main__":
    sys.exit(main())
