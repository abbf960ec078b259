"""``python -m worker --scan-id ID``: fit pixel tasks of one scan (started by a launcher)."""

from __future__ import annotations

import argparse
import sys

from skyinfra.logs import setup_logging
from worker.run import Worker
from worker.settings import WorkerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skydriver worker", description=__doc__)
    parser.add_argument("--scan-id", required=True)
    args = parser.parse_args(argv)
    setup_logging("worker", args.scan_id)
    return Worker(WorkerSettings(), args.scan_id).run()


if __name__ == "__main__":
    sys.exit(main())
