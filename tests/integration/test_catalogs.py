"""Catalog reprocessing: child scans at low priority, aggregated progress, a zip of products."""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from skydriver_api.cli import app
from tests.conftest import make_event, wait_until
from tests.integration.conftest import OpsApi


def _events(n: int, run_id: int) -> list[dict]:
    return [
        make_event(zenith=0.5 + 0.4 * i, azimuth=1.0 + i, run_id=run_id, event_id=i + 1) for i in range(n)
    ]


def test_a_json_catalog_creates_low_priority_child_scans(quiet_api: OpsApi) -> None:
    with quiet_api.http("owner") as http:
        resp = http.post(
            "/api/v1/catalogs",
            json={
                "events": _events(3, 7100),
                "name": "ic-2023",
                "reco": "dummy",
                "nsides": "8:0",
                "workers": 1,
                "classifiers": {"campaign": "c1"},
            },
        )
        assert resp.status_code == 201, resp.text
        cat = resp.json()
        listed = http.get(
            "/api/v1/scans", params={"catalog_id": cat["catalog_id"], "sort": "created_at"}
        ).json()
        status = http.get(f"/api/v1/catalogs/{cat['catalog_id']}").json()
    assert cat["n_events"] == 3 and len(cat["scan_ids"]) == 3
    scans = listed["scans"]
    assert {s["scan_id"] for s in scans} == set(cat["scan_ids"])
    assert all(
        s["priority"] == -10
        and s["owner"] == "alice"
        and s["catalog_id"] == cat["catalog_id"]
        and s["classifiers"] == {"campaign": "c1"}
        for s in scans
    )
    assert sorted(s["event_id"] for s in scans) == [1, 2, 3]
    assert status["name"] == "ic-2023" and status["states"]["queued"] == 3 and status["complete"] is False
    assert [r["index"] for r in status["scans"]] == [0, 1, 2]


def test_a_json_lines_upload_takes_settings_from_the_query(quiet_api: OpsApi) -> None:
    lines = "\n".join(json.dumps(e) for e in _events(2, 7200)) + "\n"
    with quiet_api.http("owner") as http:
        resp = http.post(
            "/api/v1/catalogs",
            content=lines.encode(),
            headers={"Content-Type": "application/x-ndjson"},
            params={"name": "lines", "reco": "dummy", "nsides": "8:0", "workers": 2, "priority": -20},
        )
    assert resp.status_code == 201, resp.text
    docs = list(quiet_api.db().scans.find({"catalog_id": resp.json()["catalog_id"]}))
    assert len(docs) == 2 and {(d["priority"], d["workers"], d["reco"]) for d in docs} == {(-20, 2, "dummy")}


def test_one_bad_event_refuses_the_whole_catalog(quiet_api: OpsApi) -> None:
    db = quiet_api.db()
    n_scans, n_cats = db.scans.count_documents({}), db.catalogs.count_documents({})
    good = [json.dumps(e) for e in _events(2, 7300)]
    with quiet_api.http("owner") as http:
        bad_json = http.post(
            "/api/v1/catalogs",
            content="\n".join([good[0], "{oops", good[1]]).encode(),
            headers={"Content-Type": "application/x-ndjson"},
            params={"reco": "dummy"},
        )
        bad_event = http.post(
            "/api/v1/catalogs",
            content="\n".join([good[0], '{"schema": "x"}']).encode(),
            headers={"Content-Type": "application/x-ndjson"},
            params={"reco": "dummy"},
        )
        no_truth = {k: v for k, v in make_event().items() if k != "truth"}
        bad_reco = http.post("/api/v1/catalogs", json={"events": [make_event(), no_truth], "reco": "dummy"})
        empty = http.post("/api/v1/catalogs", json={"events": []})
    assert bad_json.status_code == 422 and bad_json.json()["detail"].startswith("line 2: not JSON")
    assert bad_event.status_code == 422 and bad_event.json()["detail"].startswith("line 2:")
    assert bad_reco.status_code == 422 and bad_reco.json()["detail"].startswith("events[1]: reco:")
    assert empty.status_code == 422
    assert (db.scans.count_documents({}), db.catalogs.count_documents({})) == (n_scans, n_cats)


def test_status_aggregates_child_progress(quiet_api: OpsApi) -> None:
    with quiet_api.http("owner") as http:
        cat = http.post("/api/v1/catalogs", json={"events": _events(3, 7400), "reco": "dummy"}).json()
    db = quiet_api.db()
    first, second, _ = cat["scan_ids"]
    db.scans.update_one(
        {"_id": first}, {"$set": {"state": "completed", "progress": {"tasks_sent": 768, "tasks_done": 768}}}
    )
    db.scans.update_one(
        {"_id": second}, {"$set": {"state": "running", "progress": {"tasks_sent": 768, "tasks_done": 100}}}
    )
    with quiet_api.http("reader") as http:
        status = http.get(f"/api/v1/catalogs/{cat['catalog_id']}").json()
        assert http.get("/api/v1/catalogs/nope").status_code == 404
    assert {k: v for k, v in status["states"].items() if v} == {"completed": 1, "running": 1, "queued": 1}
    assert (status["tasks_sent"], status["tasks_done"], status["complete"]) == (1536, 868, False)


def test_download_bundles_products_and_a_summary_table(running_api: OpsApi) -> None:
    events = _events(2, 7500)
    with running_api.http("owner") as http:
        cat = http.post(
            "/api/v1/catalogs", json={"events": events, "reco": "dummy", "nsides": "8:0", "workers": 1}
        ).json()
        path = f"/api/v1/catalogs/{cat['catalog_id']}"
        status = wait_until(lambda: (s := http.get(path).json())["complete"] and s, 240, "the catalog")
        assert status["states"]["completed"] == 2, status
        resp = http.get(f"{path}/download", params={"formats": "json,gcn"})
        assert http.get(f"{path}/download", params={"formats": "json,bogus"}).status_code == 422
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(resp.content))
    names = set(zf.namelist())
    assert {"summary.csv", "catalog.json"} <= names
    products = sorted(n for n in names if n.startswith("products/"))
    assert len(products) == 4 and sum(n.endswith(".gcn.json") for n in products) == 2
    rows = list(csv.DictReader(io.StringIO(zf.read("summary.csv").decode())))
    assert [int(r["event_id"]) for r in rows] == [1, 2] and all(r["state"] == "completed" for r in rows)
    for row, scan_id in zip(rows, cat["scan_ids"], strict=True):
        result = json.loads(
            zf.read(next(n for n in products if scan_id in n and n.endswith(f"{scan_id}.json")))
        )
        assert row["scan_id"] == scan_id
        assert float(row["ra_deg"]) == result["best_fit"]["ra_deg"]
        assert float(row["area_90_deg2"]) == result["regions"]["levels"]["90"]["area_deg2"] > 0
        assert math.isclose(float(row["truth_offset_deg"]), result["truth"]["offset_deg"])
        assert float(row["truth_offset_deg"]) < 8  # the dummy minimum is the truth: within about a pixel
    assert json.loads(zf.read("catalog.json"))["problems"] == []


def test_cli_catalog_alert_and_scan_commands(quiet_api: OpsApi, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"SKYDRIVER_API_URL": quiet_api.url, "SKYDRIVER_TOKEN": quiet_api.tokens["owner"], "COLUMNS": "200"}
    lines = tmp_path / "catalog.jsonl"
    lines.write_text("\n".join(json.dumps(e) for e in _events(2, 7600)) + "\n")
    out = runner.invoke(app, ["catalog", "submit", str(lines), "--reco", "dummy", "--nsides", "8:0"], env=env)
    assert out.exit_code == 0, out.output
    catalog_id = out.output.split("catalog id: ")[1].split()[0]
    out = runner.invoke(app, ["catalog", "status", catalog_id], env=env)
    assert out.exit_code == 0 and "2 events; queued 2" in out.output, out.output
    out = runner.invoke(app, ["catalog", "download", catalog_id, "-o", str(tmp_path / "c.zip")], env=env)
    assert out.exit_code == 0, out.output
    rows = list(csv.DictReader(io.StringIO(zipfile.ZipFile(tmp_path / "c.zip").read("summary.csv").decode())))
    assert [r["state"] for r in rows] == ["queued", "queued"]

    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(make_event(run_id=7601, event_id=5)))
    sent = [
        runner.invoke(app, ["alerts", "send", str(event_file), "--stream", "gold"], env=env) for _ in range(2)
    ]
    assert all(s.exit_code == 0 for s in sent), sent[0].output
    assert "duplicate" not in sent[0].output and "duplicate" in sent[1].output
    scan_id = sent[0].output.split("scan id: ")[1].split()[0]

    out = runner.invoke(app, ["scans", "rescan", scan_id, "--priority", "3", "--nsides", "8:0"], env=env)
    assert out.exit_code == 0, out.output
    rescan_id = out.output.split(": ")[-1].strip()
    assert quiet_api.db().scans.find_one({"_id": rescan_id})["rescan_of"] == scan_id
    out = runner.invoke(app, ["scans", "list", "--run-id", "7601", "--all", "--limit", "1"], env=env)
    assert out.exit_code == 0 and scan_id in out.output and rescan_id in out.output, out.output
    out = runner.invoke(app, ["scans", "add-workers", scan_id, "--workers", "2"], env=env)
    assert out.exit_code == 0 and "requested 2 more workers" in out.output, out.output
    out = runner.invoke(app, ["scans", "backlog"], env=env)
    # other headers may be cut on a narrow console, never the scan id column
    assert out.exit_code == 0 and "scans active" in out.output and "scan id" in out.output, out.output
    denied = runner.invoke(app, ["catalog", "status", catalog_id], env={**env, "SKYDRIVER_TOKEN": "sd_nope"})
    assert denied.exit_code == 1 and "HTTP 401" in denied.output
