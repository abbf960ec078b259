"""The claim a launcher hands a warm process, and what the process reports back."""

from __future__ import annotations

import json

from skyinfra.warm import Claim, parse_status


def test_a_claim_is_one_json_line_naming_files_not_secrets() -> None:
    claim = Claim(
        "scan1",
        "/run/scan1/worker-0.log",
        "/run/scan1/scan-token",
        "/run/scan1/worker-broker-url",
        "/run/scan1/scan-key",
        "http://127.0.0.1:8000",
    )
    line = claim.encode()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "scan_id": "scan1",
        "log_path": "/run/scan1/worker-0.log",
        "token_file": "/run/scan1/scan-token",
        "broker_url_file": "/run/scan1/worker-broker-url",
        "scan_key_file": "/run/scan1/scan-key",
        "api_url": "http://127.0.0.1:8000",
    }
    assert Claim.decode(line) == claim


def test_status_lines_say_ready_and_give_each_finished_scan_with_its_exit_code() -> None:
    assert parse_status(b"ready\n") == (True, [])
    assert parse_status(b"scan1 0\nscan2 3\n") == (False, [("scan1", 0), ("scan2", 3)])
    assert parse_status(b"ready\nscan3 -9\n\ngarbage\nscan4 x\n") == (True, [("scan3", -9)])
    assert parse_status(b"") == (False, [])
