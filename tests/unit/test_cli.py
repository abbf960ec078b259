"""The command line as a user meets it: every bad input is one line and exit code 2, before any work.

Commands run in-process through :func:`skydriver_api.cli.run`, the entry point of ``skydriver``
(usage errors included). Commands that talk to the API get an address where nothing listens: a
check that let the request through would end in "cannot reach" (exit 1), not exit 2.
"""

from __future__ import annotations

import json
import math
import socket
from pathlib import Path
from typing import Any

import pytest
import typer

from skydriver_api.cli import app, package_version, run
from skyscan.physics.event import save_event
from skyscan.refinement.progression import DEFAULT_PROGRESSION
from skyscan.refinement.strategies import make_strategy
from skyscan.skymap.exports import render
from tests.support.skymaps import drive, gaussian_llh, make_doc, make_event

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
REALTIME = SHARED / "realtime_events" / "hese_event_00.json"
GEOMETRY = SHARED / "icecube" / "ic86_geometry.csv"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(result: tuple[int, str, str], *needles: str) -> None:
    code, out, err = result
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in out + err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def dead_api() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    path = tmp_path / "event.json"
    save_event(make_event(truth=(1.0, 2.0)), path)  # dummy fits around the truth
    return path


@pytest.fixture(scope="module")
def unresolved_result(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stored result whose 90% region is only partly resolved (a fixed progression, wide region)."""
    s = make_strategy("progression", "8:0,32:4,128:4")
    doc = make_doc(drive(s, gaussian_llh(4.3, -0.6, 2.0, 1.2)).complete, make_event(), s.nsides)
    assert doc["regions"]["unresolved"] is not None
    path = tmp_path_factory.mktemp("res") / "result.json"
    path.write_text(json.dumps(doc))
    return path


# -- the entry point -----------------------------------------------------------------------------
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--version")
    assert code == 0 and out.strip() == f"skydriver {package_version()}"
    assert package_version()[0].isdigit()


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert_refused(cli(capsys, "no-such-command"), "No such command", "skydriver --help")
    assert_refused(cli(capsys, "simulate", "--zenith", "x"), "--zenith", "skydriver simulate --help")
    code, out, _ = cli(capsys)  # no command: the help
    assert code == 2 and "scan-local" in out


def test_a_configuration_that_does_not_hold_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Settings are read before any work: an alert reco that is not enabled stops the API at once."""
    monkeypatch.setenv("SKYDRIVER_ALERT_RECO", "dummy")
    monkeypatch.setenv("SKYDRIVER_TEST_RECOS", "false")
    assert_refused(
        cli(capsys, "api"), "invalid configuration", "SKYDRIVER_ALERT_RECO 'dummy' is not an enabled reco"
    )


def test_a_reco_that_cannot_be_imported_stops_the_api_before_it_serves(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recos are imported when first asked for; the API imports the ones it serves at start, so a
    broken install stops it with the reason instead of failing a scan request later."""
    import uvicorn

    from skyscan.physics.recos import registry

    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))  # would block: never reached
    broken = registry.RecoEntry("skyscan.physics.recos.no_such_module:TableSPE", test_only=False)
    monkeypatch.setitem(registry._ENTRIES, "table-spe", broken)
    code, out, err = cli(capsys, "api")
    assert code == 1 and served == []
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out + err
    assert "reco 'table-spe' cannot be loaded: ModuleNotFoundError" in lines[0]
    assert "SKYDRIVER_ENABLED_RECOS" in lines[0]


def test_submit_and_scan_local_share_the_default_progression() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]

    def default(command: str) -> Any:
        return next(p.default for p in commands[command].params if p.name == "nsides")

    assert default("submit") == default("scan-local") == DEFAULT_PROGRESSION
    catalog = commands["catalog"].commands["submit"]
    assert next(p.default for p in catalog.params if p.name == "nsides") == DEFAULT_PROGRESSION


# -- scan-local: everything is checked before the scan starts -------------------------------------
@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--processes", "0"], ["--processes"]),
        (["--processes", "-1"], ["--processes"]),
        (["--formats", "png,bmp"], ["--formats", "'bmp'", "pdf"]),
        (["--reco", "nope"], ["--reco", "unknown reco 'nope'"]),
        (["--reco", "dummy", "--reco-option", "novalue"], ["--reco-option", "key=value"]),
        (["--reco", "dummy", "--reco-option", "bogus=1"], ["--reco", "bad options"]),
        (["--reco", "dummy", "--nsides", "8:0,12:4"], ["--nsides", "power of two"]),
        (["--reco", "dummy", "--strategy", "spiral"], ["--strategy", "unknown refinement strategy"]),
    ],
)
def test_scan_local_refuses_bad_options_before_scanning(
    capsys: pytest.CaptureFixture[str], event_file: Path, tmp_path: Path, args: list[str], needles: list[str]
) -> None:
    out = tmp_path / "out"
    assert_refused(cli(capsys, "scan-local", event_file, "--out", out, "--quiet", *args), *needles)
    assert not out.exists()  # nothing was made


def test_scan_local_refuses_bad_files(
    capsys: pytest.CaptureFixture[str], event_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert_refused(cli(capsys, "scan-local", tmp_path / "missing.json", "--out", out), "does not exist")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_refused(cli(capsys, "scan-local", bad, "--out", out), "not valid JSON")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**make_event().to_json_dict(), "mjd": -5}))
    assert_refused(cli(capsys, "scan-local", wrong, "--out", out), "mjd")
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert_refused(
        cli(capsys, "scan-local", event_file, "--reco", "dummy", "--out", a_file), "--out", "is a file"
    )
    assert not out.exists()


def test_scan_local_runs_and_flags_an_unresolved_region(
    capsys: pytest.CaptureFixture[str], event_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "new" / "out"
    args = ["scan-local", event_file, "--reco", "dummy", "--nsides", "4:0,32:1", "--processes", "1"]
    code, stdout, err = cli(capsys, *args, "--out", out, "--formats", "gcn,pdf", "--quiet")
    assert code == 0, err
    doc = json.loads((out / "result.json").read_text())
    flag = doc["regions"]["unresolved"]
    assert flag is not None  # one coarse pixel refined: the 90% region reaches its edge
    assert f"warning: {flag['message']}" in err
    gcn = next(out.glob("*.gcn.json"))
    assert json.loads(gcn.read_text())["additional_info"]["unresolved"] == flag["message"]
    assert next(out.glob("*.pdf")).read_bytes().startswith(b"%PDF-")


# -- simulate, simulate-batch, import-realtime ---------------------------------------------------
# the Pandel simulator needs no shared data: these tests are about the options, not the photons
SIM = ["simulate", "--simulator", "pandel", "--zenith", "1.0", "--azimuth", "2.0", "--energy", "2e4"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["simulate", "--zenith", "5", "--azimuth", "1", "--energy", "1e4", "-o", "x.json"], ["--zenith"]),
        (["simulate", "--zenith", "1", "--azimuth", "7", "--energy", "1e4", "-o", "x.json"], ["--azimuth"]),
        (["simulate", "--zenith", "1", "--azimuth", "1", "--energy", "0", "-o", "x.json"], ["--energy"]),
        ([*SIM, "--geometry", "missing.csv", "-o", "x.json"], ["--geometry", "missing.csv"]),
        (["simulate-batch", "--n", "0", "-o", "batch"], ["--n"]),
        (["simulate-batch", "--emin", "1e4", "--emax", "10", "-o", "batch"], ["--emin", "--emax"]),
    ],
)
def test_simulate_refuses_bad_options(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    needles: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused(cli(capsys, *args), *needles)
    assert list(tmp_path.iterdir()) == []


def test_simulate_output_folders(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # into a missing folder: made, as `result -o` and `scan-local --out` do
    target = tmp_path / "new" / "sub" / "ev.json"
    code, out, err = cli(capsys, *SIM, "-o", target)
    assert code == 0, err
    assert json.loads(target.read_text())["schema"] == "skydriver.event/1"
    # a folder where the file should go, or a file where a folder should be
    assert_refused(cli(capsys, *SIM, "-o", tmp_path / "new"), "--output", "is a folder")
    assert_refused(cli(capsys, *SIM, "-o", target / "x.json"), "--output", "cannot make the folder")
    assert_refused(
        cli(capsys, "simulate-batch", "--simulator", "pandel", "--n", "1", "-o", target),
        "--output",
        "is a file",
    )


def test_import_realtime_checks(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    not_i3live = tmp_path / "x.json"
    not_i3live.write_text(json.dumps({"hello": 1}))
    geometry = tmp_path / "geo.csv"
    geometry.write_text("string,om,x,y,z\n")
    assert_refused(
        cli(capsys, "import-realtime", tmp_path / "nope.json", "--geometry", geometry, "-o", "o.json")
    )
    assert_refused(
        cli(capsys, "import-realtime", not_i3live, "--geometry", tmp_path / "nope.csv", "-o", "o.json"),
        "--geometry",
    )
    assert_refused(
        cli(capsys, "import-realtime", not_i3live, "--geometry", geometry, "-o", tmp_path / "o.json")
    )
    assert not (tmp_path / "o.json").exists()


def test_import_realtime_into_a_missing_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if not (REALTIME.exists() and GEOMETRY.exists()):
        pytest.skip(f"needs the shared reference data {REALTIME} and {GEOMETRY}")
    target = tmp_path / "deep" / "er" / "hese00.json"
    code, out, err = cli(capsys, "import-realtime", REALTIME, "--geometry", GEOMETRY, "-o", target)
    assert code == 0, err
    assert "HESE_SPEFit2" in json.loads(target.read_text())["reference_fits"]


# -- export: offline products from a stored result ------------------------------------------------
def test_export_writes_every_format_offline(
    capsys: pytest.CaptureFixture[str], unresolved_result: Path, tmp_path: Path
) -> None:
    doc = json.loads(unresolved_result.read_text())
    for fmt in ("fits", "geojson", "gcn", "json"):
        target = tmp_path / f"map.{fmt}"
        code, out, err = cli(capsys, "export", unresolved_result, "--format", fmt, "-o", target)
        assert code == 0, err
        if fmt in ("geojson", "gcn", "json"):
            written, expected = json.loads(target.read_bytes()), json.loads(render(doc, None, fmt).content)
            for data in (written, expected):
                data.pop("alert_datetime", None)  # the GCN notice's time of writing
            assert written == expected
        else:
            assert target.read_bytes()[:30] == render(doc, None, fmt).content[:30]  # FITS DATE differs
        assert f"warning: {doc['regions']['unresolved']['message']}" in err
    code, out, err = cli(capsys, "export", unresolved_result, "-f", "png", "-o", tmp_path / "a" / "b.png")
    assert code == 0 and (tmp_path / "a" / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_to_its_own_file_name(
    capsys: pytest.CaptureFixture[str],
    unresolved_result: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "export", unresolved_result, "-f", "gcn")
    assert code == 0, err
    assert [p.name for p in tmp_path.iterdir()] == ["run00123456.evt000000000042.scan0001.gcn.json"]


def test_export_refuses_bad_input(
    capsys: pytest.CaptureFixture[str], unresolved_result: Path, tmp_path: Path
) -> None:
    target = tmp_path / "x"
    assert_refused(cli(capsys, "export", unresolved_result, "-f", "bmp", "-o", target), "--format", "'bmp'")
    assert_refused(cli(capsys, "export", tmp_path / "nope.json", "-f", "png"), "does not exist")
    assert_refused(cli(capsys, "export", unresolved_result, "-o", target), "Missing option '--format'")
    not_json = tmp_path / "a.json"
    not_json.write_text("{")
    assert_refused(cli(capsys, "export", not_json, "-f", "png", "-o", target), "is not JSON")
    event = tmp_path / "event.json"
    save_event(make_event(), event)
    assert_refused(cli(capsys, "export", event, "-f", "png", "-o", target), "is not a result document")
    assert_refused(cli(capsys, "export", unresolved_result, "-f", "png", "-o", tmp_path), "is a folder")
    assert_refused(
        cli(capsys, "export", unresolved_result, "-f", "png", "--event", not_json, "-o", target), "JSON"
    )
    from skyscan.refinement.fits import PixelBest

    failed = {(1, p): PixelBest(1, p, math.nan, 0, {}, True, "x") for p in range(12)}
    empty = tmp_path / "failed.json"
    empty.write_text(json.dumps(make_doc(failed, make_event(), [1])))
    assert_refused(cli(capsys, "export", empty, "-f", "png", "-o", target), "no finite fit")
    assert not target.exists()


# -- the API client commands: refused before any request ------------------------------------------
def test_client_commands_refuse_before_any_request(
    capsys: pytest.CaptureFixture[str], event_file: Path, tmp_path: Path, dead_api: str
) -> None:
    api = ["--api", dead_api]
    assert_refused(
        cli(capsys, "submit", event_file, "--nsides", "8:0,12:4", *api), "--nsides", "power of two"
    )
    assert_refused(cli(capsys, "submit", event_file, "--strategy", "spiral", *api), "--strategy")
    assert_refused(cli(capsys, "submit", event_file, "--reco", "nope", *api), "--reco", "unknown reco")
    assert_refused(cli(capsys, "submit", event_file, "--priority", "101", *api), "--priority")
    assert_refused(cli(capsys, "submit", event_file, "--workers", "0", *api), "--workers")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "skydriver.event/1"}))
    assert_refused(cli(capsys, "submit", bad, *api), "run_id")
    assert_refused(cli(capsys, "result", "s1", "-f", "bmp", *api), "--format")
    assert_refused(cli(capsys, "result", "s1", "-f", "png", "-o", tmp_path, *api), "is a folder")
    assert_refused(cli(capsys, "scans", "list", "--sort", "age", *api), "--sort")
    assert_refused(cli(capsys, "scans", "list", "--since", "yesterday", *api), "--since")
    assert_refused(cli(capsys, "catalog", "submit", event_file, "--nsides", "8:0,64:-1", *api), "--nsides")
    assert_refused(cli(capsys, "catalog", "submit", bad.with_name("nope"), *api), "does not exist")
    assert_refused(cli(capsys, "catalog", "download", "c1", "--formats", "bmp", *api), "--formats")
    assert_refused(cli(capsys, "tokens", "create", "--role", "king", "--owner", "me"), "--role")
    assert_refused(cli(capsys, "api", "--port", "70000"), "--port")
    # and with valid input the same command goes to the API, which is not there: exit 1, one line
    code, _, err = cli(capsys, "submit", event_file, "--reco", "dummy", "--no-follow", *api)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "cannot reach" in err


def test_the_best_fit_printout_carries_the_flag(
    capsys: pytest.CaptureFixture[str], unresolved_result: Path
) -> None:
    from skydriver_api.cli.common import print_best_fit

    doc = json.loads(unresolved_result.read_text())
    print_best_fit(doc)
    out, err = capsys.readouterr()
    assert "best fit: RA" in out and err.strip() == f"warning: {doc['regions']['unresolved']['message']}"
