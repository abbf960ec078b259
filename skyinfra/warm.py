"""Warm processes: scan servers and workers started ahead of any scan, bound to one scan at a time.

Process start-up (imports, the astrometry tables, a worker's fit process) takes seconds of CPU; a
realtime alert cannot wait for it, and a catalog of short scans would spend as much on start-ups
as on fits. A launcher may therefore keep warm processes: started with ``--warm``, they do
everything that does not depend on a scan, then block reading a *claim* from their standard input
(a pipe only the launcher holds). A claim binds the process to one scan and hands it that scan's
credentials: the scan id, where its logs go, and the files holding its secrets (the scan token,
the AMQP URL of its broker identity, the scan's signing key). Nothing secret is in the claim
itself, on a command line or in the environment.

A process writes ``ready`` to its status pipe once warmed up (and says so in its own log), so a
launcher can prefer one that is. When a scan is over it writes ``<scan id> <exit code>``, drops
what it held for that scan (settings, connections, the event and its preparation) and waits for
the next claim: one scan at a time, never two. Closing the claim pipe stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Claim:
    scan_id: str
    log_path: str
    token_file: str
    broker_url_file: str
    scan_key_file: str
    api_url: str

    def encode(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def decode(cls, line: bytes) -> Claim:
        data = json.loads(line)
        return cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})

    def apply(self) -> None:
        """Become the claimed scan's process: its log file, its secret files, its API."""
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        for name, value in self.environment().items():
            os.environ[name] = value

    def environment(self) -> dict[str, str]:
        return {
            "SKYDRIVER_SCAN_TOKEN_FILE": self.token_file,
            "SKYDRIVER_BROKER_URL_FILE": self.broker_url_file,
            "SKYDRIVER_SCAN_KEY_FILE": self.scan_key_file,
            "SKYDRIVER_API_URL": self.api_url,
        }


def wait_for_claim() -> Claim | None:
    """Block until the launcher writes a claim; None when it closed the pipe (the pool is stopping)."""
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return None
    claim = Claim.decode(line)
    for path in (claim.token_file, claim.broker_url_file, claim.scan_key_file):
        if not Path(path).is_file():
            raise RuntimeError(f"claim for scan {claim.scan_id} names a missing file {path}")
    return claim


def process_arguments(prog: str, description: str | None, argv: list[str] | None) -> argparse.Namespace:
    """How a launcher starts a scan server or worker: ``--scan-id ID``, or ``--warm --status-fd N``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--scan-id")
    group.add_argument("--warm", action="store_true", help="warm up, then serve claimed scans in turn")
    parser.add_argument("--status-fd", type=int, help="with --warm: where to report each scan's end")
    args = parser.parse_args(argv)
    if args.warm and args.status_fd is None:
        parser.error("--warm needs --status-fd")
    return args


READY = "ready"
READY_LOG_LINE = "warm: ready for a claim"


def serve_claims(serve: Callable[[str], int], status_fd: int) -> int:
    """Serve claimed scans one after another until the claim pipe closes (call once warmed up)."""
    print(READY_LOG_LINE, flush=True)
    os.write(status_fd, f"{READY}\n".encode())
    while (claim := wait_for_claim()) is not None:
        claim.apply()
        try:
            code = serve(claim.scan_id)
        except Exception:  # a crash in one scan ends this process; the launcher starts another
            code = 1
            raise
        finally:
            for name in claim.environment():
                os.environ.pop(name, None)
            os.write(status_fd, f"{claim.scan_id} {code}\n".encode())
    return 0


def parse_status(lines: bytes) -> tuple[bool, list[tuple[str, int]]]:
    """What a warm process wrote to its status pipe: whether it said it is ready, and
    ``(scan id, exit code)`` for each scan it finished."""
    ready, ended = False, []
    for line in lines.decode(errors="replace").splitlines():
        scan_id, _, code = line.strip().partition(" ")
        if scan_id == READY and not code:
            ready = True
        elif scan_id and code.lstrip("-").isdigit():
            ended.append((scan_id, int(code)))
    return ready, ended
