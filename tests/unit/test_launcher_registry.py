"""The launcher registry: every entry imports and implements the interface, each builds from the
settings the way the API builds it (Kubernetes through the real client against the local API server in
tests/support/fake_kube.py, HTCondor through the real ``htcondor2`` bindings), and a name it does not
know is an error that lists the names it does."""

from __future__ import annotations

import inspect
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import htcondor2
import pytest
import yaml

from skydriver_api.launchers import LAUNCHERS, UnknownLauncherError, make_launcher
from skydriver_api.launchers.base import (
    Launcher,
    LaunchError,
    LaunchSpec,
    WorkerCluster,
    WorkforceStatus,
)
from skydriver_api.launchers.htcondor import HTCondorLauncher
from skydriver_api.launchers.htcondor.submit import BROKER_FILE, SCAN_KEY_FILE, TOKEN_FILE
from skydriver_api.launchers.kubernetes import KubernetesLauncher
from skydriver_api.launchers.local import LocalLauncher
from skydriver_api.launchers.registry import launcher_class
from skydriver_api.settings import ApiSettings as Settings
from tests.support.credentials import CREDENTIALS
from tests.support.fake_kube import FakeKubeAPI

NS = "science"
ADMIN_BROKER = "amqps://admin:admin-password@rabbitmq.example.org:5671/%2F"
SPEC = LaunchSpec(
    scan_id="5f1c0a9e2b7d4c3a8e6f1d2c3b4a5968",
    scan_token="per-scan-token-0123456789",
    clusters=(WorkerCluster("osg", 2),),
    credentials=CREDENTIALS,
)
CHART_SCHEMA = Path(__file__).resolve().parents[2] / "helm" / "skydriver" / "values.schema.json"


def _closed_port() -> int:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubeAPI]:
    """The local API server, and the environment of a deployment whose kubeconfig points at it."""
    with FakeKubeAPI() as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "test",
                    "clusters": [{"name": "local", "cluster": {"server": server.url}}],
                    "users": [{"name": "u", "user": {"token": "kube-bearer-token"}}],
                    "contexts": [{"name": "test", "context": {"cluster": "local", "user": "u"}}],
                }
            )
        )
        monkeypatch.setenv("SKYDRIVER_K8S_KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("SKYDRIVER_K8S_NAMESPACE", NS)
        # HTCondor's settings: grid workers through the real bindings (no pool reachable here)
        monkeypatch.setenv("SKYDRIVER_CONDOR_SUBMIT_DIR", str(tmp_path / "condor"))
        monkeypatch.setenv("SKYDRIVER_RABBITMQ_URL", ADMIN_BROKER)  # the API's, never a scan process's
        monkeypatch.setenv("SKYDRIVER_CONDOR_COLLECTOR", f"127.0.0.1:{_closed_port()}")
        monkeypatch.setenv("SKYDRIVER_CONDOR_SCHEDD", "ap.example.org")
        yield server


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_every_entry_is_a_complete_launcher_under_its_own_name(name: str) -> None:
    cls = launcher_class(name)
    assert issubclass(cls, Launcher) and not inspect.isabstract(cls)
    assert cls.name == name


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_every_entry_builds_from_the_settings(name: str, api: FakeKubeAPI, tmp_path: Path) -> None:
    launcher = make_launcher(Settings(launcher=name, runtime_dir=tmp_path / "run"))
    assert type(launcher) is launcher_class(name) and launcher.name == name
    assert api.requests == []  # building one calls nothing


def test_kubernetes_from_the_registry_runs_a_scan_on_the_api_server(api: FakeKubeAPI) -> None:
    launcher = make_launcher(Settings(launcher="kubernetes"))
    assert isinstance(launcher, KubernetesLauncher)
    handles = launcher.launch_server(SPEC)
    assert handles["namespace"] == NS and api.names("Job", NS) == [handles["server_job"]]
    assert launcher.status(SPEC.scan_id, handles) == WorkforceStatus(server="pending", workers={})
    launcher.abort(SPEC.scan_id, handles)
    assert api.names("Job", NS) == [] and api.names("Secret", NS) == []
    calls = len(api.requests)
    launcher.forget(
        SPEC.scan_id, handles
    )  # the interface's default: finished Jobs are the cluster's to clean up
    assert len(api.requests) == calls


def test_htcondor_from_the_registry_sends_its_server_to_the_registered_kubernetes(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    launcher = make_launcher(Settings(launcher="htcondor"))
    assert isinstance(launcher, HTCondorLauncher)
    assert isinstance(launcher.server_launcher, KubernetesLauncher)  # SKYDRIVER_CONDOR_SERVER_LAUNCHER
    handles = launcher.launch_server(SPEC)
    assert handles["server_launcher"] == "kubernetes" and api.names("Job", NS) == [handles["server_job"]]

    scan_dir = launcher.scan_dir(SPEC.scan_id)
    submit = htcondor2.Submit(launcher.submit_description(SPEC, SPEC.clusters[0], scan_dir))
    assert submit.getQArgs() == "2" and submit["My.SkyDriverScanId"] == f'"{SPEC.scan_id}"'
    with pytest.raises(LaunchError, match="submit to schedd ap.example.org failed"):
        launcher.launch_workers(SPEC, SPEC.clusters[0])  # the real collector lookup, refused
    assert (scan_dir / TOKEN_FILE).exists() and (scan_dir / SCAN_KEY_FILE).exists()
    assert (scan_dir / BROKER_FILE).read_text().strip() == CREDENTIALS.worker_broker_url
    # the server Job got the server's identity from the scan's Secret, not the API's URL
    (job,) = (api.get("Job", NS, name) for name in api.names("Job", NS))
    assert job is not None and "admin-password" not in str(job)
    assert "SKYDRIVER_RABBITMQ_URL" not in {
        e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    launcher.forget(SPEC.scan_id, handles)
    assert not [n for n in (TOKEN_FILE, BROKER_FILE, SCAN_KEY_FILE) if (scan_dir / n).exists()]


def test_local_from_the_registry_gets_the_shared_settings(tmp_path: Path) -> None:
    launcher = make_launcher(Settings(launcher="local", runtime_dir=tmp_path / "run"))
    assert isinstance(launcher, LocalLauncher)
    assert launcher.runtime_dir == (tmp_path / "run").resolve()
    assert launcher.status(SPEC.scan_id, {}) == WorkforceStatus()


def test_the_default_is_local() -> None:
    assert Settings().launcher == "local"
    assert isinstance(make_launcher(Settings()), LocalLauncher)


@pytest.mark.parametrize("name", ["kubernets", "slurm", ""])
def test_an_unknown_name_is_an_error_naming_the_known_ones(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYDRIVER_LAUNCHER", name)
    with pytest.raises(UnknownLauncherError) as caught:
        make_launcher(Settings())
    assert str(caught.value) == (
        f"unknown launcher {name!r} (SKYDRIVER_LAUNCHER); known launchers: htcondor, kubernetes, local"
    )
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "entry, error, message",
    [
        ("skydriver_api.launchers.local:LocalLaunchr", ValueError, "local has no 'LocalLaunchr'"),
        ("skydriver_api.launchers.base:LaunchSpec", TypeError, "LaunchSpec is not a Launcher"),
        ("skydriver_api.launchers.locall:LocalLauncher", ModuleNotFoundError, "launchers.locall"),
    ],
)
def test_a_misspelt_entry_fails(
    entry: str, error: type[Exception], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(LAUNCHERS, "typo", entry)
    with pytest.raises(error, match=message):
        launcher_class("typo")


def test_a_launcher_missing_a_call_cannot_be_built() -> None:
    class NoAbort(Launcher):
        name = "no-abort"

        def launch_server(self, spec: LaunchSpec) -> dict[str, Any]:
            return {}

        def launch_workers(self, spec: LaunchSpec, cluster: WorkerCluster) -> dict[str, Any]:
            return {}

        def status(self, scan_id: str, handles: dict[str, Any]) -> WorkforceStatus:
            return WorkforceStatus()

    with pytest.raises(TypeError, match=r"abstract method.*\babort\b"):
        NoAbort()


def test_the_chart_offers_only_registered_launchers() -> None:
    chart_launchers = json.loads(CHART_SCHEMA.read_text())["properties"]["launcher"]["enum"]
    assert set(chart_launchers) <= set(LAUNCHERS)
