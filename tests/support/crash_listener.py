"""The real alert listener, killed (``os._exit``, no clean-up, like SIGKILL) right after a given step
of the intake of its N-th message: ``python tests/support/crash_listener.py STEP N``.

Steps (``skydriver_api.streams.listener``): ``received`` (before the alert is stored), ``stored``
(stored, offset not committed), ``committed``. Exits 17 when it crashed as asked.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from skydriver_api.settings import ApiSettings  # noqa: E402
from skydriver_api.streams.listener import listen  # noqa: E402
from skyinfra.logs import setup_logging  # noqa: E402

CRASHED = 17


def main() -> None:
    step, nth = sys.argv[1], int(sys.argv[2])
    seen: dict[str, int] = {}

    def observe(done: str, msg: object) -> None:
        seen[done] = seen.get(done, 0) + 1
        if done == step and seen[done] == nth:
            print(f"crashing after step {step} of message {nth}", flush=True)
            os._exit(CRASHED)

    setup_logging("listener")
    asyncio.run(listen(ApiSettings(), asyncio.Event(), observe))


if __name__ == "__main__":
    main()
