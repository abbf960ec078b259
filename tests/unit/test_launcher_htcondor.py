"""The HTCondor launcher: submit descriptions built here are parsed by the real ``htcondor2`` bindings and
their ClassAd expressions evaluated by ``classad2``; schedd calls go to a recording stand-in (no schedd
runs here), and one test runs against a real schedd when one is reachable."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import classad2
import htcondor2
import pytest

from skydriver_api.launchers.base import (
    Launcher,
    LaunchError,
    LaunchSpec,
    Resources,
    WorkerCluster,
    WorkforceStatus,
)
from skydriver_api.launchers.htcondor import HTCondorLauncher, HTCondorSettings
from skydriver_api.launchers.htcondor.status import job_state
from skydriver_api.launchers.htcondor.submit import ATTR_SCAN_ID, BROKER_FILE, SCAN_KEY_FILE, TOKEN_FILE
from tests.support.credentials import CREDENTIALS, secrets_with

TOKEN = "per-scan-token-0123456789"
SIF = "/cvmfs/icecube.opensciencegrid.org/containers/skydriver/skydriver_1.2.3.sif"
BROKER = CREDENTIALS.worker_broker_url
SECRETS = secrets_with(TOKEN)
SPEC = LaunchSpec(
    scan_id="5f1c0a9e2b7d4c3a8e6f1d2c3b4a5968",
    scan_token=TOKEN,
    clusters=(WorkerCluster("osg", 3), WorkerCluster("chtc", 7)),
    credentials=CREDENTIALS,
    resources=Resources(
        cpus=1.5,
        memory_mb=3000,
        disk_mb=5000,
        max_worker_runtime_s=7200,
    ),
    priority=10,
    api_url="https://skydriver.example.org",
)


class FakeSubmitResult:
    def __init__(self, cluster: int, count: int) -> None:
        self._cluster, self._count = cluster, count

    def cluster(self) -> int:
        return self._cluster

    def num_procs(self) -> int:
        return self._count


class RecordingSchedd:
    """Stands in for ``htcondor2.Schedd``: records calls, answers queries with real ClassAds."""

    def __init__(self, name: str | None, first_cluster: int = 100) -> None:
        self.name = name
        self.submits: list[tuple[htcondor2.Submit, int, bool]] = []
        self.spooled: list[FakeSubmitResult] = []
        self.acts: list[tuple[Any, str, str]] = []
        self.queries: list[tuple[str, list[str]]] = []
        self.ads: list[classad2.ClassAd] = []
        self.fail: Exception | None = None
        self._next = first_cluster

    def submit(self, description: htcondor2.Submit, count: int = 0, spool: bool = False) -> FakeSubmitResult:
        if self.fail:
            raise self.fail
        assert isinstance(description, htcondor2.Submit)
        self.submits.append((description, count, spool))
        self._next += 1
        return FakeSubmitResult(self._next, count)

    def spool(self, result: FakeSubmitResult) -> None:
        self.spooled.append(result)

    def query(self, constraint: str = "true", projection: list[str] | None = None) -> list[classad2.ClassAd]:
        if self.fail:
            raise self.fail
        self.queries.append((constraint, list(projection or [])))
        expr = classad2.ExprTree(constraint)
        return [ad for ad in self.ads if expr.eval(ad) is True]  # the constraint, evaluated for real

    def act(self, action: Any, job_spec: str, reason: str = "") -> None:
        if self.fail:
            raise self.fail
        self.acts.append((action, job_spec, reason))


class StubServerLauncher(Launcher):
    name = "kubernetes"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def launch_server(self, spec: LaunchSpec) -> dict[str, Any]:
        self.calls.append("launch_server")
        return {"launcher": "kubernetes", "namespace": "science", "server_job": "sd-x-server-1"}

    def launch_workers(self, spec: LaunchSpec, cluster: WorkerCluster) -> dict[str, Any]:
        raise AssertionError("workers go to HTCondor")

    def status(self, scan_id: str, handles: dict[str, Any]) -> WorkforceStatus:
        self.calls.append("status")
        return WorkforceStatus(server="running", reasons=["server: fine"])

    def abort(self, scan_id: str, handles: dict[str, Any]) -> None:
        self.calls.append("abort")


Made = tuple[HTCondorLauncher, dict[str | None, RecordingSchedd], StubServerLauncher]


def make(tmp_path: Path, **overrides: Any) -> Made:
    schedds: dict[str | None, RecordingSchedd] = {}

    def factory(name: str | None) -> RecordingSchedd:
        return schedds.setdefault(name, RecordingSchedd(name, first_cluster=100 * (len(schedds) + 1)))

    values: dict[str, Any] = {
        "submit_dir": tmp_path / "condor",
        "image": SIF,
        **overrides,
    }
    server = StubServerLauncher()
    launcher = HTCondorLauncher(HTCondorSettings(**values), server_launcher=server, schedd_factory=factory)
    return launcher, schedds, server


def parsed(launcher: HTCondorLauncher, cluster: WorkerCluster, spec: LaunchSpec = SPEC) -> htcondor2.Submit:
    text = launcher.submit_description(spec, cluster, Path("/submit/scan"))
    assert not [secret for secret in SECRETS if secret in text]  # not in args, env or anywhere else
    return htcondor2.Submit(text)


# --- the submit description, parsed by htcondor2 --------------------------------------------------------


def test_submit_description_parsed_by_htcondor(tmp_path: Path) -> None:
    launcher, _, _ = make(tmp_path, requirements="has_avx2", accounting_group="group_icecube.realtime")
    sub = parsed(launcher, SPEC.clusters[0])
    assert sub["universe"] == "container"
    assert sub["container_image"] == SIF  # the operator's setting
    assert sub["transfer_container"] == "false"  # on CVMFS already
    assert sub["executable"] == "/usr/local/bin/skydriver-condor-worker"
    assert sub["transfer_executable"] == "false"
    assert sub["arguments"] == f'"--scan-id {SPEC.scan_id}"'
    assert sub["request_cpus"] == "2"
    assert sub["request_memory"] == "3000MB" and sub["request_disk"] == "5000MB"
    assert sub["priority"] == "10"
    assert sub[f"My.{ATTR_SCAN_ID}"] == f'"{SPEC.scan_id}"'
    assert sub["My.SkyDriverCluster"] == '"osg"'
    assert sub["My.SkyDriverMaxRuntime"] == "7200"
    assert sub["transfer_input_files"] == (
        f"/submit/scan/{TOKEN_FILE}, /submit/scan/{BROKER_FILE}, /submit/scan/{SCAN_KEY_FILE}"
    )
    assert sub["should_transfer_files"] == "YES"
    assert sub["requirements"] == "has_avx2" and sub["accounting_group"] == "group_icecube.realtime"
    assert sub["max_retries"] == "2"
    assert sub.getQArgs() == "3"
    env = sub["environment"]
    assert "SKYDRIVER_SCAN_TOKEN_FILE='scan-token'" in env and "SKYDRIVER_BROKER_URL_FILE='broker-url'" in env
    assert "SKYDRIVER_SCAN_KEY_FILE='scan-key'" in env
    assert "SKYDRIVER_RABBITMQ_URL" not in env and "SKYDRIVER_MONGODB_URI" not in env
    assert f"SKYDRIVER_API_URL='{SPEC.api_url}'" in env
    assert sub["output"] == "/submit/scan/$(ClusterId).$(ProcId).out"
    assert sub.expand("output") == "/submit/scan/1.0.out"  # macros expand as condor_submit would


def test_each_cluster_gets_its_own_count(tmp_path: Path) -> None:
    launcher, _, _ = make(tmp_path)
    assert [parsed(launcher, c).getQArgs() for c in SPEC.clusters] == ["3", "7"]


def test_docker_image_and_defaults(tmp_path: Path) -> None:
    launcher, _, _ = make(tmp_path, keep_worker_output=False, image="ghcr.io/skydriver/skydriver:1.2.3")
    spec = LaunchSpec(
        scan_id="s1", scan_token=TOKEN, clusters=(WorkerCluster("osg", 1),), credentials=CREDENTIALS
    )
    sub = parsed(launcher, spec.clusters[0], spec)
    assert sub["container_image"] == "docker://ghcr.io/skydriver/skydriver:1.2.3"
    assert "transfer_container" not in sub and "output" not in sub and "requirements" not in sub
    assert sub["request_cpus"] == "1" and sub["priority"] == "0"
    assert "SKYDRIVER_API_URL" not in sub["environment"]


def test_periodic_remove_enforces_the_maximum_runtime(tmp_path: Path) -> None:
    launcher, _, _ = make(tmp_path, hold_grace_s=600)
    sub = parsed(launcher, SPEC.clusters[0])
    now = int(time.time())

    def removes(**job: int) -> bool:
        ad = classad2.ClassAd(
            {
                "SkyDriverMaxRuntime": int(sub["My.SkyDriverMaxRuntime"]),
                "SkyDriverHoldGrace": int(sub["My.SkyDriverHoldGrace"]),
                **job,
            }
        )
        ad["PeriodicRemove"] = classad2.ExprTree(sub["periodic_remove"])
        return ad.eval("PeriodicRemove") is True

    assert removes(JobStatus=2, JobCurrentStartDate=now - 7300)
    assert not removes(JobStatus=2, JobCurrentStartDate=now - 60)
    assert not removes(JobStatus=1, EnteredCurrentStatus=now - 10 * 7200)  # idle: waits as long as it must
    assert removes(JobStatus=5, EnteredCurrentStatus=now - 700)
    assert not removes(JobStatus=5, EnteredCurrentStatus=now - 60)


@pytest.mark.parametrize("scan_id", ["../etc", "a b", 'q"uote', ""])
def test_unsafe_scan_ids_are_refused(tmp_path: Path, scan_id: str) -> None:
    launcher, schedds, _ = make(tmp_path)
    spec = LaunchSpec(
        scan_id=scan_id, scan_token=TOKEN, clusters=(WorkerCluster("osg", 1),), credentials=CREDENTIALS
    )
    with pytest.raises(LaunchError):
        launcher.launch_workers(spec, spec.clusters[0])
    assert schedds == {} and not (tmp_path / "condor").exists()


# --- launching, status and abort ----------------------------------------------------------------------


def test_launch_workers_submits_with_credentials_in_files(tmp_path: Path) -> None:
    launcher, schedds, _ = make(tmp_path)
    handles = launcher.launch_workers(SPEC, SPEC.clusters[0])
    assert handles == {
        "launcher": "htcondor",
        "cluster": "osg",
        "schedd": None,
        "condor_cluster_ids": [101],
        "workers": 3,
        "condor_scan_id": SPEC.scan_id,
    }
    text = json.dumps(handles)
    assert not [secret for secret in SECRETS if secret in text]
    ((sub, count, spool),) = schedds[None].submits
    assert count == 3 and spool is False
    assert sub[f"My.{ATTR_SCAN_ID}"] == f'"{SPEC.scan_id}"'
    scan_dir = (tmp_path / "condor" / SPEC.scan_id).resolve()
    assert sub["transfer_input_files"] == (
        f"{scan_dir / TOKEN_FILE}, {scan_dir / BROKER_FILE}, {scan_dir / SCAN_KEY_FILE}"
    )
    assert (scan_dir / TOKEN_FILE).read_text().strip() == TOKEN
    # the scan's worker identity: never the server's, never the shared administrator URL
    assert (scan_dir / BROKER_FILE).read_text().strip() == CREDENTIALS.worker_broker_url
    assert (scan_dir / SCAN_KEY_FILE).read_text().strip() == CREDENTIALS.scan_key
    assert stat.S_IMODE(scan_dir.stat().st_mode) == 0o700
    for name in (TOKEN_FILE, BROKER_FILE, SCAN_KEY_FILE):
        assert stat.S_IMODE((scan_dir / name).stat().st_mode) == 0o600
    on_disk = "".join(p.read_text() for p in scan_dir.iterdir() if p.is_file())
    assert CREDENTIALS.server_broker_url not in on_disk and "sp@" not in on_disk
    description = str(sub)
    assert not [secret for secret in SECRETS if secret in description]


def test_workers_never_get_the_shared_broker_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = "amqp://admin:admin-password@rabbitmq.internal:5672/%2F"
    monkeypatch.setenv("SKYDRIVER_RABBITMQ_URL", admin)
    monkeypatch.setenv("SKYDRIVER_CONDOR_BROKER_URL", admin)  # the removed setting: ignored
    launcher, schedds, _ = make(tmp_path)
    launcher.launch_workers(SPEC, SPEC.clusters[0])
    scan_dir = launcher.scan_dir(SPEC.scan_id)
    assert (scan_dir / BROKER_FILE).read_text().strip() == CREDENTIALS.worker_broker_url
    ((sub, _, _),) = schedds[None].submits
    assert "admin-password" not in str(sub)
    assert not any("admin-password" in p.read_text() for p in scan_dir.iterdir() if p.is_file())


def test_add_workers_submits_another_cluster(tmp_path: Path) -> None:
    launcher, schedds, _ = make(tmp_path, spool=True)
    first = launcher.launch_workers(SPEC, SPEC.clusters[0])
    more = launcher.launch_workers(SPEC, WorkerCluster("osg", 4))
    assert first["condor_cluster_ids"] != more["condor_cluster_ids"]
    assert [(c, s) for _, c, s in schedds[None].submits] == [(3, True), (4, True)]
    assert [r.cluster() for r in schedds[None].spooled] == [101, 102]  # input files uploaded


def test_clusters_map_to_schedds(tmp_path: Path) -> None:
    mapping = {"osg": "ap40.example.org", "chtc": "ap2001.example.org"}
    launcher, schedds, _ = make(tmp_path, cluster_schedds=mapping)
    for cluster in SPEC.clusters:
        launcher.launch_workers(SPEC, cluster)
    assert {n: [c for _, c, _ in s.submits] for n, s in schedds.items()} == {
        "ap40.example.org": [3],
        "ap2001.example.org": [7],
    }
    with pytest.raises(LaunchError, match="unknown HTCondor cluster 'nowhere'"):
        launcher.launch_workers(SPEC, WorkerCluster("nowhere", 1))


def test_submit_failure_is_a_launch_error(tmp_path: Path) -> None:
    launcher, schedds, _ = make(tmp_path)
    launcher._schedd_factory(None).fail = htcondor2.HTCondorException("Failed to connect to schedd")
    with pytest.raises(LaunchError, match="Failed to connect"):
        launcher.launch_workers(SPEC, SPEC.clusters[0])


def _ad(status: int, cluster: str = "osg", scan_id: str = SPEC.scan_id, **extra: Any) -> classad2.ClassAd:
    return classad2.ClassAd(
        {
            "ClusterId": 101,
            "ProcId": 0,
            "JobStatus": status,
            ATTR_SCAN_ID: scan_id,
            "SkyDriverCluster": cluster,
            **extra,
        }
    )


def test_status_from_job_ads(tmp_path: Path) -> None:
    launcher, schedds, server = make(tmp_path)
    schedd = launcher._schedd_factory(None)
    schedd.ads = [
        _ad(1),
        _ad(1),
        _ad(2),
        _ad(2),
        _ad(2),
        _ad(6),
        _ad(5, HoldReason="Failed to pull image: manifest unknown", HoldReasonCode=13),
        _ad(5, HoldReason="Failed to pull image: manifest unknown", HoldReasonCode=13),
        _ad(
            5,
            cluster="chtc",
            HoldReason="Job has gone over memory limit of 3000 megabytes.",
            HoldReasonCode=34,
        ),
        _ad(4, ExitCode=0),
        _ad(4, ExitCode=3),
        _ad(2, scan_id="another-scan"),
    ]
    status = launcher.status(SPEC.scan_id, {"server_job": "sd-x-server-1"})
    assert status.server == "running" and server.calls == ["status"]
    assert status.workers == {"pending": 2, "running": 4, "held": 3, "succeeded": 1, "failed": 1}
    assert status.reasons == [
        "server: fine",
        "worker[osg]: held: Failed to pull image: manifest unknown (code 13) (x2)",
        "worker[chtc]: held: Job has gone over memory limit of 3000 megabytes. (code 34)",
        "worker[osg]: exit code 3",
    ]
    ((constraint, projection),) = schedd.queries
    assert constraint == f'{ATTR_SCAN_ID} == "{SPEC.scan_id}"'
    assert {"JobStatus", "HoldReason", "HoldReasonCode", ATTR_SCAN_ID} <= set(projection)


def test_status_survives_an_unreachable_schedd(tmp_path: Path) -> None:
    launcher, _, _ = make(tmp_path)
    launcher._schedd_factory(None).fail = htcondor2.HTCondorException("Unable to locate local daemon")
    status = launcher.status(SPEC.scan_id, {})
    assert status.workers == {} and status.server == "running"
    assert status.reasons[-1] == "schedd (local) unreachable: Unable to locate local daemon"


def test_job_state_mapping() -> None:
    assert job_state(_ad(3, RemoveReason="via condor_rm")) == ("removed", "removed: via condor_rm")
    assert job_state(_ad(7)) == ("suspended", None)
    assert job_state(_ad(2)) == ("running", None)


def test_abort_removes_by_scan_attribute(tmp_path: Path) -> None:
    launcher, schedds, server = make(tmp_path, cluster_schedds={"osg": "ap40.example.org"})
    launcher.launch_workers(SPEC, SPEC.clusters[0])
    scan_dir = launcher.scan_dir(SPEC.scan_id)
    assert (scan_dir / TOKEN_FILE).exists()
    launcher.abort(SPEC.scan_id, {"schedd": "ap40.example.org"})
    acted = {name: s.acts for name, s in schedds.items()}
    assert set(acted) == {None, "ap40.example.org"}  # the default schedd and every configured one
    for acts in acted.values():
        ((action, constraint, reason),) = acts
        assert action == htcondor2.JobAction.Remove
        assert constraint == f'{ATTR_SCAN_ID} == "{SPEC.scan_id}"'
        assert SPEC.scan_id in reason
    assert server.calls == ["abort"]
    assert not [n for n in (TOKEN_FILE, BROKER_FILE, SCAN_KEY_FILE) if (scan_dir / n).exists()]
    launcher.purge(SPEC.scan_id)
    assert not scan_dir.exists()


def test_forget_deletes_the_credentials_of_a_reaped_scan(tmp_path: Path) -> None:
    launcher, _, _ = make(tmp_path)
    handles = launcher.launch_workers(SPEC, SPEC.clusters[0])
    launcher.forget(SPEC.scan_id, handles)
    scan_dir = launcher.scan_dir(SPEC.scan_id)
    assert scan_dir.exists()  # the worker logs stay
    assert not [n for n in (TOKEN_FILE, BROKER_FILE, SCAN_KEY_FILE) if (scan_dir / n).exists()]
    launcher.forget("../../etc", {})  # never outside the submit dir


def test_abort_failure_keeps_credentials_and_reports(tmp_path: Path) -> None:
    launcher, _, _ = make(tmp_path)
    launcher.launch_workers(SPEC, SPEC.clusters[0])
    launcher._schedd_factory(None).fail = htcondor2.HTCondorException("timed out")
    with pytest.raises(LaunchError, match="schedd \\(local\\): timed out"):
        launcher.abort(SPEC.scan_id, {})
    assert (launcher.scan_dir(SPEC.scan_id) / TOKEN_FILE).exists()


def test_server_goes_to_the_server_launcher(tmp_path: Path) -> None:
    launcher, _, server = make(tmp_path)
    handles = launcher.launch_server(SPEC)
    assert handles["server_launcher"] == "kubernetes" and handles["server_job"] == "sd-x-server-1"
    assert server.calls == ["launch_server"]


def test_default_construction_reads_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYDRIVER_CONDOR_CLUSTER_SCHEDDS", '{"osg": "ap40.example.org"}')
    monkeypatch.setenv("SKYDRIVER_CONDOR_BROKER_URL", BROKER)  # a removed setting: ignored
    monkeypatch.setenv("SKYDRIVER_CONDOR_SPOOL", "true")
    launcher = HTCondorLauncher()
    assert launcher.settings.cluster_schedds == {"osg": "ap40.example.org"} and launcher.settings.spool
    assert "broker_url" not in HTCondorSettings.model_fields
    assert BROKER not in repr(launcher.settings)
    from skydriver_api.launchers.kubernetes import KubernetesLauncher

    assert isinstance(launcher.server_launcher, KubernetesLauncher)  # no API call on construction


# --- a real schedd, when one is reachable ------------------------------------------------------------


def _real_schedd() -> Any:
    try:
        schedd = htcondor2.Schedd()
        schedd.query(constraint="false", projection=["ClusterId"])
        return schedd
    except Exception as exc:  # no condor configuration or daemon here
        pytest.skip(f"no HTCondor schedd reachable: {exc}")


def test_against_a_real_schedd(tmp_path: Path) -> None:
    schedd = _real_schedd()
    launcher, _, _ = make(tmp_path, image="docker://busybox:1")
    launcher._schedd_factory = lambda name: schedd
    spec = LaunchSpec(
        scan_id=f"skydriver-test-{int(time.time())}",
        scan_token=TOKEN,
        clusters=(WorkerCluster("local", 2),),
        credentials=CREDENTIALS,
    )
    try:
        handles = launcher.launch_workers(spec, spec.clusters[0])
        ads = schedd.query(
            constraint=f'{ATTR_SCAN_ID} == "{spec.scan_id}"',
            projection=["ClusterId", "RequestCpus", "JobPrio", "SkyDriverCluster"],
        )
        assert len(ads) == 2 and {ad["ClusterId"] for ad in ads} == set(handles["condor_cluster_ids"])
        assert all(ad["SkyDriverCluster"] == "local" and ad["JobPrio"] == 0 for ad in ads)
        status = launcher.worker_status(spec.scan_id, handles)[0]
        assert sum(status.values()) == 2
    finally:
        launcher.abort(spec.scan_id, {})
    remaining = schedd.query(
        constraint=f'{ATTR_SCAN_ID} == "{spec.scan_id}" && JobStatus != 3', projection=["ClusterId"]
    )
    assert remaining == []


# --- the worker entrypoint the submit description runs ----------------------------------------------

ENTRYPOINT = Path(__file__).resolve().parents[2] / "containers" / "skydriver-condor-worker"


def _run_entrypoint(tmp_path: Path, files: dict[str, str]) -> tuple[int, list[str], dict[str, str]]:
    """Run the real script with a stand-in ``skydriver`` that records its arguments and environment."""
    import os
    import subprocess

    scratch, bin_dir = tmp_path / "scratch", tmp_path / "bin"
    scratch.mkdir()
    bin_dir.mkdir()
    for name, text in files.items():
        (scratch / name).write_text(text + "\n")
    fake = bin_dir / "skydriver"
    fake.write_text(
        '#!/bin/sh\nprintf "%s\\n" "$@" > "$_CONDOR_SCRATCH_DIR/args"\nenv > "$_CONDOR_SCRATCH_DIR/env"\n'
    )
    fake.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "_CONDOR_SCRATCH_DIR": str(scratch),
        "SKYDRIVER_SCAN_TOKEN_FILE": TOKEN_FILE,
        "SKYDRIVER_BROKER_URL_FILE": BROKER_FILE,
        "SKYDRIVER_SCAN_KEY_FILE": SCAN_KEY_FILE,
        "SKYDRIVER_RABBITMQ_URL": "amqp://admin:admin-password@image-default:5672/%2F",
    }
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT), "--scan-id", SPEC.scan_id],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        return proc.returncode, [], {}
    args = (scratch / "args").read_text().split()
    seen = dict(line.split("=", 1) for line in (scratch / "env").read_text().splitlines() if "=" in line)
    assert os.access(ENTRYPOINT, os.X_OK)
    return 0, args, seen


ALL_FILES = {TOKEN_FILE: TOKEN, BROKER_FILE: BROKER, SCAN_KEY_FILE: CREDENTIALS.scan_key}


def test_condor_entrypoint_points_the_settings_at_the_files(tmp_path: Path) -> None:
    code, args, env = _run_entrypoint(tmp_path, ALL_FILES)
    assert code == 0
    assert args == ["worker", "--scan-id", SPEC.scan_id]
    scratch = tmp_path / "scratch"
    assert env["SKYDRIVER_SCAN_TOKEN_FILE"] == str(scratch / TOKEN_FILE)
    assert env["SKYDRIVER_BROKER_URL_FILE"] == str(scratch / BROKER_FILE)
    assert env["SKYDRIVER_SCAN_KEY_FILE"] == str(scratch / SCAN_KEY_FILE)
    assert "SKYDRIVER_RABBITMQ_URL" not in env  # no URL from the environment, the file's only
    leaked = [s for s in (*SECRETS, "admin-password") if any(s in v for v in env.values())]
    assert leaked == []


def test_condor_entrypoint_paths_are_read_by_the_worker_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skyinfra.settings import BrokerSettings, ScanKeySettings

    code, _, env = _run_entrypoint(tmp_path, ALL_FILES)
    assert code == 0
    for name in ("SKYDRIVER_BROKER_URL_FILE", "SKYDRIVER_SCAN_KEY_FILE"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.delenv("SKYDRIVER_RABBITMQ_URL", raising=False)
    assert BrokerSettings().broker_url() == CREDENTIALS.worker_broker_url
    assert ScanKeySettings().read_scan_key() == bytes.fromhex(CREDENTIALS.scan_key)


@pytest.mark.parametrize("missing", [TOKEN_FILE, BROKER_FILE, SCAN_KEY_FILE])
def test_condor_entrypoint_refuses_to_start_without_a_credential(tmp_path: Path, missing: str) -> None:
    code, _, _ = _run_entrypoint(tmp_path, {k: v for k, v in ALL_FILES.items() if k != missing})
    assert code == 2


def test_unreachable_collector_through_the_real_bindings(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    launcher = HTCondorLauncher(
        HTCondorSettings(
            collector=f"127.0.0.1:{port}",
            schedd="ap.example.org",
            submit_dir=tmp_path / "condor",
        ),
        server_launcher=StubServerLauncher(),  # the real htcondor2 Collector/Schedd lookup, no stand-in
    )
    with pytest.raises(LaunchError, match="submit to schedd ap.example.org failed"):
        launcher.launch_workers(SPEC, SPEC.clusters[0])
    counts, reasons = launcher.worker_status(SPEC.scan_id, {})
    assert counts == {} and reasons[0].startswith("schedd ap.example.org unreachable: ")
    with pytest.raises(LaunchError, match="schedd ap.example.org"):
        launcher.abort(SPEC.scan_id, {})


@pytest.mark.parametrize(
    "image, api_url",
    [
        ('docker://evil:1\n+Owner = "root"', ""),
        ("/cvmfs/x.sif extra", ""),
        ("/cvmfs/x.sif", 'https://api" SKYDRIVER_X=1'),
    ],
)
def test_values_cannot_inject_submit_commands(tmp_path: Path, image: str, api_url: str) -> None:
    launcher, schedds, _ = make(tmp_path, image=image)
    spec = LaunchSpec(
        scan_id="s1",
        scan_token=TOKEN,
        clusters=(WorkerCluster("osg", 1),),
        credentials=CREDENTIALS,
        api_url=api_url,
    )
    with pytest.raises(LaunchError):
        launcher.launch_workers(spec, spec.clusters[0])
    assert schedds == {}
