"""The dashboard in a real browser: Debian's chromium, driven by Playwright, against a live API that
launches real scans. The page's own state (``window.skydriver``) and the pixels of its screenshots
are checked, not only that it loaded.

``SKYDRIVER_DOCS_SCREENSHOTS=1`` also writes the two screenshots the README shows into docs/images/.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT, make_event
from tests.integration.conftest import OpsApi, now

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is a test dependency")
expect = sync_api.expect

CHROMIUM = Path(os.environ.get("SKYDRIVER_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS_IMAGES = ROOT / "docs" / "images"
SCAN_TIMEOUT_MS = 240_000
STEP_TIMEOUT_MS = 30_000  # shared CI machines are slow; each wait still ends on its condition
expect.set_options(timeout=STEP_TIMEOUT_MS)
RED, WHITE = (255, 0, 0), (255, 255, 255)
REFERENCE_COLOUR = (0xFF, 0x7F, 0x0E)  # the first reference fit's marker


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"chromium not found at {CHROMIUM}: apt-get install chromium (make test's set-up does)")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh user data dir
            executable_path=str(CHROMIUM),
            headless=True,
            args=LAUNCH_ARGS,
            accept_downloads=True,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(STEP_TIMEOUT_MS)
        try:
            yield context
        finally:
            context.close()


def signed_in(browser: Any, api: OpsApi, who: str) -> Any:
    page = browser.new_page()  # a new tab: its own session storage
    page.goto(f"{api.url}/")
    page.fill("#token", api.tokens[who])
    page.click("#sign-in button[type=submit]")
    role = {"owner": "submitter", "other": "submitter"}.get(who, who)
    expect(page.locator("#identity-role")).to_have_text(role)
    assert api.tokens[who] not in page.url
    assert page.evaluate("sessionStorage.getItem('skydriver.token')") == api.tokens[who]
    return page


def image(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def near(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    return np.abs(pixels - np.array(colour)).sum(axis=-1) <= tolerance


def save_screenshot(png: bytes, tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(png)
    if os.environ.get("SKYDRIVER_DOCS_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        (DOCS_IMAGES / name).write_bytes(png)


def test_a_wrong_token_is_refused_with_what_to_do(running_api: OpsApi, browser: Any) -> None:
    page = browser.new_page()
    page.goto(f"{running_api.url}/")
    page.fill("#token", "sd_not-a-token")
    page.click("#sign-in button[type=submit]")
    expect(page.locator("#message")).to_contain_text("unknown token")
    expect(page.locator("#message")).to_contain_text("sign in again")
    assert page.evaluate("sessionStorage.getItem('skydriver.token')") is None
    assert page.evaluate("window.skydriver.view") == "sign-in"
    page.close()


def test_only_those_allowed_see_abort_and_rescan(running_api: OpsApi, browser: Any) -> None:
    scan_id = running_api.insert_scan("alice")  # queued, never admitted
    for who, abort, rescan in (("reader", 0, 0), ("other", 0, 1), ("owner", 1, 1)):
        page = signed_in(browser, running_api, who)
        page.goto(f"{running_api.url}/#/scans/{scan_id}")
        expect(page.locator("#scan-state")).to_have_attribute("data-state", "queued")
        expect(page.locator("#history li")).to_have_count(1)  # the stream is connected
        expect(page.locator("#abort")).to_have_count(abort)
        expect(page.locator("#rescan")).to_have_count(rescan)
        if who != "owner":
            page.close()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#abort")
    # the state comes back through the event stream; the button goes with it
    expect(page.locator("#history li[data-state=aborted]")).to_have_count(1)
    expect(page.locator("#scan-state")).to_have_attribute("data-state", "aborted")
    expect(page.locator("#abort")).to_have_count(0)
    stored = running_api.db().scans.find_one({"_id": scan_id})
    assert stored["state"] == "aborted" and stored["state_reason"] == "aborted by alice"
    page.close()


def test_the_healpix_port_matches_healpy(running_api: OpsApi, browser: Any) -> None:
    import healpy as hp

    rng = random.Random(7)
    points = [(math.asin(rng.uniform(-1, 1)), rng.uniform(0, 2 * math.pi)) for _ in range(400)]
    edges = [(d, r) for d in (-89.99, -41.8, 0.0, 41.8, 89.99) for r in (0.0, 359.99)]  # poles, caps, RA 0
    points += [(math.radians(d), math.radians(r)) for d, r in edges]
    page = browser.new_page()
    page.goto(f"{running_api.url}/")
    for nside in (1, 8, 64, 512, 1024):
        # z = cos(theta) as healpy computes it, so that points on pixel edges get the same input
        z_phi = [(math.cos(math.pi / 2 - dec), ra) for dec, ra in points]
        got = page.evaluate(
            """async ([nside, points]) => {
                const { ang2pixRing } = await import('/static/healpix.js');
                return points.map(([z, phi]) => ang2pixRing(nside, z, phi));
            }""",
            [nside, z_phi],
        )
        dec, ra = np.array(points).T
        assert got == hp.ang2pix(nside, np.pi / 2 - dec, ra).tolist(), f"nside {nside}"
    page.close()


def test_a_completed_scan_with_an_unresolved_region_shows_the_warning(
    running_api: OpsApi, browser: Any
) -> None:
    from skyscan.refinement.strategies import make_strategy
    from tests.support.skymaps import drive, gaussian_llh, make_doc
    from tests.support.skymaps import make_event as skymap_event

    # a wide region that a fixed progression leaves half resolved (as tests/unit/test_unresolved.py)
    strategy = make_strategy("progression", "8:0,32:4,128:4")
    wide = gaussian_llh(math.radians(250.0), math.radians(-38.0), 2.0, 1.2, angle_deg=20.0)
    doc = make_doc(drive(strategy, wide).complete, skymap_event(), strategy.nsides)
    flag = doc["regions"]["unresolved"]
    assert flag is not None
    per_nside: dict[str, dict[str, int]] = {}
    for row in doc["pixels"]:
        counts = per_nside.setdefault(str(row["nside"]), {"tasks_sent": 0, "tasks_done": 0})
        counts["tasks_sent"] += 1
        counts["tasks_done"] += 1
    n = doc["n_pixels"]
    scan_id = running_api.insert_scan(
        "alice",
        "completed",
        nsides="8:0,32:4,128:4",
        progress={"nsides": per_nside, "tasks_sent": n, "tasks_done": n},
        best_fit=doc["best_fit"],
    )
    running_api.db().skymaps.insert_one(
        {"scan_id": scan_id, "final": True, "result": {**doc, "scan_id": scan_id}}
    )

    page = signed_in(browser, running_api, "reader")
    problems = page_problems(page)
    page.goto(f"{running_api.url}/#/scans/{scan_id}")
    page.wait_for_function("() => window.skydriver.scan.complete && window.skydriver.scan.ended")
    expect(page.locator("#unresolved")).to_be_visible()
    expect(page.locator("#unresolved")).to_contain_text(flag["message"])
    seen = page.evaluate("window.skydriver.scan")
    assert seen["states"] == ["queued", "completed"] and seen["draws"][-1]["pixels"] == doc["n_pixels"]
    assert seen["zoom"]["contours"]["90"] > 0
    resolved = f"{100 * doc['regions']['levels']['90']['resolved_fraction']:.0f}%"
    expect(page.locator('#errors tr[data-level="90"] td').last).to_have_text(resolved)
    assert problems == []
    page.close()


def page_problems(page: Any) -> list[str]:
    """Errors the page logs or throws (a Content-Security-Policy violation is one)."""
    problems: list[str] = []
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def test_a_scan_fills_in_live_to_a_complete_map_with_contours(
    running_api: OpsApi, browser: Any, tmp_path: Path
) -> None:
    page = signed_in(browser, running_api, "owner")
    problems = page_problems(page)
    expect(page.locator("#list-updated")).to_contain_text("updated")
    event = make_event(run_id=136766, event_id=7637140)
    event["reference_fits"] = {"SplineMPE": {"zenith": 2.03, "azimuth": 1.23}}
    with running_api.http("owner") as http:
        created = http.post(
            "/api/v1/scans",
            json={
                "event": event,
                "reco": "dummy",
                "reco_options": {"delay_s": 0.01},  # a few seconds of fitting: the map fills in
                "nsides": "8:0,64:12",
                "workers": 2,
            },
        )
    assert created.status_code == 201, created.text
    scan_id = created.json()["scan_id"]

    # the list shows the new scan by itself (live updates), then its page
    row = page.locator(f'#scans tr[data-scan-id="{scan_id}"]')
    expect(row).to_be_visible(timeout=15_000)
    row.locator("a").click()
    expect(page.locator("#scan-state")).to_have_attribute("data-state", "completed", timeout=SCAN_TIMEOUT_MS)
    # a function, not a string: the page's CSP forbids eval
    page.wait_for_function("() => window.skydriver.scan.complete && window.skydriver.scan.ended")
    seen = page.evaluate("window.skydriver.scan")

    with running_api.http("reader") as http:
        result = http.get(f"/api/v1/scans/{scan_id}/result").json()
        geojson = http.get(f"/api/v1/scans/{scan_id}/result", params={"format": "geojson"}).json()
    assert seen["states"] == ["queued", "launching", "running", "completed"]
    assert seen["progress"] == sorted(seen["progress"]) and seen["progress"][-1] == result["n_pixels"]
    # per-nside progress from the stream: every task sent was done
    rows = page.locator("#nside-progress tbody tr")
    expect(rows).to_have_count(2)
    for i, nside in enumerate(("8", "64")):
        expect(rows.nth(i)).to_have_attribute("data-nside", nside)
        assert rows.nth(i).get_attribute("data-done") == rows.nth(i).get_attribute("data-sent") != "0"
    # the map was drawn while pixels arrived, then whole
    draws = seen["draws"]
    assert draws[-1]["pixels"] == result["n_pixels"] and draws[-1]["complete"]
    assert any(0 < d["pixels"] < result["n_pixels"] for d in draws), draws
    inside = math.pi / 4 * 720 * 360  # the Mollweide ellipse, in canvas pixels
    assert seen["fullSky"]["fitted"] > 0.99 * inside
    assert seen["fullSky"]["contours"]["90"] > 0 and seen["zoom"]["contours"]["50"] > 0
    expect(page.locator("#zoom")).to_have_attribute("data-contours", "50,90")
    expect(page.locator("#legend")).to_contain_text("SplineMPE")
    markers = {m["name"]: m for m in seen["zoom"]["markers"]}
    assert markers["best fit"]["visible"] and markers["SplineMPE"]["visible"] and markers["truth"]["visible"]
    assert seen["zoom"]["centre"] == [result["best_fit"]["ra_deg"], result["best_fit"]["dec_deg"]]

    # the pixels: the zoom shows both contour colours and the reference fit's marker where the page
    # says it drew it; the full sky is coloured nearly everywhere inside the ellipse
    zoom = image(page.locator("#zoom").screenshot())
    scale = zoom.shape[1] / 480
    assert near(zoom, RED).sum() > 100 and near(zoom, WHITE).sum() > 100
    mx, my = (round(markers["SplineMPE"][k] * scale) for k in ("x", "y"))
    assert near(zoom[my - 2 : my + 3, mx - 2 : mx + 3], REFERENCE_COLOUR, 60).any()
    sky = image(page.locator("#fullsky").screenshot())
    unfitted = near(sky, (217, 217, 217), 6).sum()
    assert len(np.unique(sky.reshape(-1, 3), axis=0)) > 50 and unfitted < 0.01 * sky.shape[0] * sky.shape[1]

    # the numbers, the flag and every download button
    area90 = result["regions"]["levels"]["90"]["area_deg2"]
    expect(page.locator('#errors tr[data-level="90"] td.area')).to_have_text(f"{area90:.3f}")
    expect(page.locator("#unresolved")).to_be_hidden()  # regions.unresolved is null for this scan
    assert result["regions"]["unresolved"] is None
    from skyscan.skymap.exports import FORMATS

    buttons = page.locator("button[data-format]")
    assert [buttons.nth(i).get_attribute("data-format") for i in range(buttons.count())] == list(FORMATS)
    with page.expect_download() as downloading:
        page.click('button[data-format="geojson"]')
    download = downloading.value
    assert download.suggested_filename.endswith(".contours.geojson")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert json.loads(saved.read_text()) == geojson
    expect(page.locator("#download-note")).to_contain_text(download.suggested_filename)
    assert running_api.tokens["owner"] not in page.url

    assert problems == []
    save_screenshot(page.screenshot(full_page=True), tmp_path, "dashboard-scan.png")

    # the zoom is interactive: the wheel zooms out, a drag pans, Reset goes back to the best fit
    home, centre = seen["zoom"]["halfDeg"], seen["zoom"]["centre"]
    box = page.locator("#zoom").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, 300)
    page.wait_for_function(f"() => window.skydriver.scan.zoom.halfDeg > {home!r}")
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 4, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    page.wait_for_function(f"() => window.skydriver.scan.zoom.centre[0] !== {centre[0]!r}")
    page.click("#zoom-reset")
    page.wait_for_function(f"() => window.skydriver.scan.zoom.halfDeg === {home!r}")
    assert page.evaluate("window.skydriver.scan.zoom.centre") == centre
    page.goto(f"{running_api.url}/#/scans")
    expect(page.locator(f'#scans tr[data-scan-id="{scan_id}"][data-state="completed"]')).to_be_visible()
    listed = page.locator("main").bounding_box()
    clip = {"x": 0, "y": 0, "width": 1400, "height": listed["y"] + listed["height"]}
    save_screenshot(page.screenshot(clip=clip), tmp_path, "dashboard-scans.png")
    page.close()


def test_alerts_and_catalogs_pages_list_them_and_a_catalog_downloads(
    running_api: OpsApi, browser: Any, tmp_path: Path
) -> None:
    alert = {
        "run_id": 138599,
        "event_id": 9,
        "revision": 1,
        "stream": "gold",
        "event_name": "IceCube-250412A",
    }
    alert_scan = running_api.insert_scan("alice", "completed", priority=100, alert=alert)
    catalog_id = f"cat{uuid.uuid4().hex[:20]}"
    child = running_api.insert_scan(
        "alice", "completed", priority=-10, catalog_id=catalog_id, catalog_index=0
    )
    running_api.db().catalogs.insert_one(
        {"_id": catalog_id, "name": "IC86 reprocessing", "owner": "alice", "created_at": now(), "n_events": 1}
    )
    page = signed_in(browser, running_api, "reader")
    page.click("#nav a[data-view=alerts]")
    row = page.locator(f'#alerts tr[data-scan-id="{alert_scan}"]')
    expect(row).to_contain_text("IceCube-250412A")
    expect(row).to_contain_text("138599:9")
    expect(page.locator("#alert-file")).to_have_count(0)  # a reader cannot send alerts
    page.click("#nav a[data-view=catalogs]")
    page.locator("#catalogs a", has_text=catalog_id).click()
    expect(page.locator("#catalog")).to_contain_text("IC86 reprocessing")
    expect(page.locator("#catalog-scans tbody tr")).to_have_count(1)
    with page.expect_download() as downloading:
        page.click("#catalog-download")
    saved = tmp_path / downloading.value.suggested_filename
    downloading.value.save_as(saved)
    assert saved.name == f"{catalog_id}.zip"
    with zipfile.ZipFile(saved) as bundle:
        summary = list(csv.DictReader(io.StringIO(bundle.read("summary.csv").decode())))
    assert [(r["scan_id"], r["state"]) for r in summary] == [(child, "completed")]
    page.close()
