"""``python -m worker --scan-id ID``: fit pixel tasks of one scan (started by a launcher).

``python -m worker --warm --status-fd N``: start and warm up (imports, the fit process) without a
scan, then serve the scans of the claims on standard input one at a time (``skyinfra.warm``).
"""

from __future__ import annotations

import sys

from skyinfra.logs import setup_logging
from skyinfra.settings import RecoSettings
from skyinfra.warm import process_arguments, serve_claims
from worker.fitter import Fitter
from worker.run import Worker, tls_context
from worker.settings import WorkerSettings

WARM_UP_TIMEOUT_S = 300.0  # past this the worker says it is ready anyway (a fit waits, nothing fails)


def _run(scan_id: str, fitter: Fitter | None) -> int:
    try:
        worker = Worker(WorkerSettings(), scan_id)
    except (ValueError, OSError) as err:  # no scan key or broker file: say so, no traceback
        print(f"skydriver worker: {err}", file=sys.stderr, flush=True)
        return 2
    return worker.run(fitter) if fitter is not None else worker.run()


def main(argv: list[str] | None = None) -> int:
    args = process_arguments("skydriver worker", __doc__, argv)
    if not args.warm:
        setup_logging("worker", args.scan_id)
        return _run(args.scan_id, None)
    tls_context()  # made now, not in the first scan's event request
    fitter = Fitter(warm_recos=RecoSettings().recos())  # a claim's reco is imported already
    fitter.wait_warm(WARM_UP_TIMEOUT_S)  # ready means ready: a claim never waits for the fit process

    def serve(scan_id: str) -> int:
        setup_logging("worker", scan_id)
        return _run(scan_id, fitter)

    try:
        return serve_claims(serve, args.status_fd)
    finally:
        fitter.close()


if __name__ == "__main__":
    sys.exit(main())
