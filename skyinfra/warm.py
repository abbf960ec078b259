"""Warm processes: a scan server or worker started ahead of any scan, which then takes exactly one.

Process start-up (imports, the astrometry tables, a worker's fit process) takes seconds; a
realtime alert cannot wait for it. A launcher may therefore keep warm processes: started with
``--warm``, they do everything that does not depend on a scan, then block reading one *claim*
from their standard input (a pipe only the launcher holds). The claim binds the process to one
scan and hands it that scan's credentials: the scan id, where its logs go, and the files holding
its secrets (the scan token today; the scan's broker identity and signing key are more files of
the same claim). Nothing secret is in the claim itself, on a command line or in the environment.
A process serves the one scan it claimed and exits: no state of one scan can reach another.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Claim:
    scan_id: str
    log_path: str
    token_file: str
    api_url: str

    def encode(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode()

    @classmethod
    def decode(cls, line: bytes) -> Claim:
        data = json.loads(line)
        return cls(**{k: str(data[k]) for k in ("scan_id", "log_path", "token_file", "api_url")})

    def apply(self) -> None:
        """Become the claimed scan's process: its log file, its token file, its API."""
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.environ["SKYDRIVER_SCAN_TOKEN_FILE"] = self.token_file
        os.environ["SKYDRIVER_API_URL"] = self.api_url


def wait_for_claim() -> Claim | None:
    """Block until the launcher writes a claim; None when it closed the pipe (the pool is stopping)."""
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return None
    claim = Claim.decode(line)
    if not Path(claim.token_file).is_file():
        raise RuntimeError(f"claim for scan {claim.scan_id} names a missing token file")
    return claim
