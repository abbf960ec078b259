"""``python -m server --scan-id ID``: run the scan server of one scan (started by a launcher)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from server.scan import ScanServer
from server.settings import ServerSettings
from skyinfra.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skydriver server", description=__doc__)
    parser.add_argument("--scan-id", required=True)
    args = parser.parse_args(argv)
    setup_logging("server", args.scan_id)

    async def run() -> int:
        server = ScanServer(ServerSettings(), args.scan_id)
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)  # type: ignore[union-attr]
        try:
            return await server.run()
        except asyncio.CancelledError:
            return 0  # stopped from outside; a replacement resumes from MongoDB
        finally:
            await server.close()

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
