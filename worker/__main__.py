"""``python -m worker --scan-id ID``: fit pixel tasks of one scan (started by a launcher).

``python -m worker --warm``: start and warm up (imports, the fit process) without a scan, then take
one from a claim on standard input (``skyinfra.warm``) and serve it.
"""

from __future__ import annotations

import argparse
import sys

from skyinfra.logs import setup_logging
from skyinfra.warm import wait_for_claim
from worker.fitter import Fitter
from worker.run import Worker
from worker.settings import WorkerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skydriver worker", description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--scan-id")
    group.add_argument("--warm", action="store_true", help="warm up, then serve the scan of one claim")
    args = parser.parse_args(argv)
    fitter = None
    scan_id = args.scan_id
    if args.warm:
        fitter = Fitter()
        fitter.start()
        claim = wait_for_claim()
        if claim is None:
            fitter.close()
            return 0
        claim.apply()
        scan_id = claim.scan_id
    setup_logging("worker", scan_id)
    return Worker(WorkerSettings(), scan_id).run(fitter)


if __name__ == "__main__":
    sys.exit(main())
