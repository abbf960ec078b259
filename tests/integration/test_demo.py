"""`make demo`'s main job, `skydriver demo`, run as a user runs it: its own API, a server and workers
over the real RabbitMQ, the result stored in the real MongoDB-wire server, the files written out."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from skyscan.sky.coordinates import angular_distance
from tests.conftest import MONGO_URI, ROOT, LiveApi, stop_api

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_demo_scans_a_simulated_track_end_to_end(services: None, tmp_path: Path) -> None:
    from pymongo import MongoClient

    out = tmp_path / "demo-output"
    database = f"skydriver_test_{uuid.uuid4().hex[:10]}"
    runtime = tmp_path / "run"
    env = dict(
        os.environ,
        SKYDRIVER_MONGODB_DATABASE=database,
        SKYDRIVER_RUNTIME_DIR=str(runtime),
        SKYDRIVER_WORKER_IDLE_TIMEOUT_S="20",
        PYTHONPATH=str(ROOT),
    )
    # a shorter progression than the demo's default: the same path through every part, fewer fits
    command = [sys.executable, "-m", "skydriver_api.cli", "demo", "--out", str(out), "--nsides", "8:0,64:4"]
    demo = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = demo.communicate(timeout=600)
        with MongoClient(MONGO_URI) as client:  # read before the clean-up drops the database
            stored = list(client[database].scans.find({}, {"state": 1}))
    finally:
        stop_api(LiveApi("", "", database, runtime, demo, env))  # its scan processes, queues, users
        demo.kill()
    assert demo.returncode == 0, output + (out / "api.log").read_text(errors="replace")

    event = json.loads((out / "event.json").read_text())
    result = json.loads((out / "result.json").read_text())
    truth, best = event["truth"], result["best_fit"]
    offset = math.degrees(
        float(
            angular_distance(
                math.radians(best["azimuth_deg"]),
                math.radians(90.0 - best["zenith_deg"]),
                truth["azimuth"],
                math.pi / 2 - truth["zenith"],
            )
        )
    )
    assert offset < 2.0  # a 50 TeV track in pandel-mpe's own simulator, refined to nside 64
    assert best["nside"] == 64
    assert result["truth"]["offset_deg"] == pytest.approx(offset, abs=0.01)
    assert (out / "skymap.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (out / "skymap.png").stat().st_size > 10_000
    assert f"truth offset: {result['truth']['offset_deg']:.3f} deg" in output
    scan_id = result["scan_id"]
    assert f"scan id: {scan_id}" in output
    assert stored == [{"_id": scan_id, "state": "completed"}]  # the one scan, stored by the service
