"""``python -m server --scan-id ID``: run the scan server of one scan (started by a launcher).

``python -m server --warm --status-fd N``: start and warm up (imports, the astrometry tables)
without a scan, then serve the scans of the claims on standard input one at a time
(``skyinfra.warm``).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from server.scan import ScanServer
from server.settings import ServerSettings
from skyinfra.logs import setup_logging
from skyinfra.warm import process_arguments, serve_claims
from skyscan.sky.coordinates import astrometry_context


def serve(scan_id: str) -> int:
    setup_logging("server", scan_id)

    async def run() -> int:
        try:
            server = ScanServer(ServerSettings(), scan_id)
        except (ValueError, OSError) as err:  # no scan key or broker file: say so, no traceback
            print(f"skydriver server: {err}", file=sys.stderr, flush=True)
            return 2
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


def main(argv: list[str] | None = None) -> int:
    args = process_arguments("skydriver server", __doc__, argv)
    if not args.warm:
        return serve(args.scan_id)
    astrometry_context(51544.5)  # the tables the first directions would otherwise wait for
    return serve_claims(serve, args.status_fd)


if __name__ == "__main__":
    sys.exit(main())
