"""The Kubernetes launcher: every Job it builds validates against the Kubernetes schemas, and its calls
go through the real ``kubernetes`` client to a real HTTP server (tests/support/fake_kube.py) that
records the request bodies and serves the Jobs and Pods the status is derived from."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client as k8s

from skydriver_api.launchers.base import (
    LaunchError,
    LaunchSpec,
    Resources,
    ScanCredentials,
    WorkerCluster,
    WorkforceStatus,
)
from skydriver_api.launchers.kubernetes import KubernetesLauncher, KubernetesSettings
from skydriver_api.launchers.kubernetes.client import RBAC_RULES, load_configuration
from skydriver_api.launchers.kubernetes.manifests import (
    LABEL_CLUSTER,
    LABEL_SCAN_ID,
    scan_label,
    token_secret_name,
)
from tests.support.credentials import CREDENTIALS, secrets_with
from tests.support.fake_kube import FakeKubeAPI

K8S_VERSION = kubernetes_validate.latest_version()
NS = "science"
TOKEN = "tok-0123456789-very-secret"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SECRETS = secrets_with(TOKEN)
SECRET_DATA = {
    "token": TOKEN,
    "server-broker-url": CREDENTIALS.server_broker_url,
    "worker-broker-url": CREDENTIALS.worker_broker_url,
    "scan-key": CREDENTIALS.scan_key,
}
MOUNT = "/var/run/skydriver/scan"

SPEC = LaunchSpec(
    scan_id="5f1c0a9e2b7d4c3a8e6f1d2c3b4a5968",
    scan_token=TOKEN,
    clusters=(WorkerCluster("k8s-a", 3), WorkerCluster("k8s-b", 5)),
    credentials=CREDENTIALS,
    resources=Resources(
        cpus=1.5,
        memory_mb=3000,
        disk_mb=5000,
        max_worker_runtime_s=7200,
    ),
    priority=10,
    api_url="http://sky-skydriver.science.svc:80",
)


def settings(**overrides: Any) -> KubernetesSettings:
    base: dict[str, Any] = {
        "namespace": NS,
        "secret_name": "sky-skydriver",
        "config_map": "sky-skydriver",
        "service_account": "sky-skydriver-scan",
        "instance": "sky",
        "image": "registry.example.org/skydriver:1.2.3",
    }
    return KubernetesSettings(**{**base, **overrides})


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as server:
        yield server


@pytest.fixture
def launcher(api: FakeKubeAPI) -> KubernetesLauncher:
    return KubernetesLauncher(settings(), k8s.ApiClient(k8s.Configuration(host=api.url)))


def validate(obj: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def spec_for(scan_id: str, token: str = TOKEN, clusters: tuple[WorkerCluster, ...] = ()) -> LaunchSpec:
    return LaunchSpec(scan_id=scan_id, scan_token=token, clusters=clusters, credentials=CREDENTIALS)


def secret_files(job: dict[str, Any]) -> dict[str, str]:
    """Mounted path -> key of the scan Secret, as the Job's pods see it."""
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "scan-token")
    volume = next(v for v in pod["volumes"] if v["name"] == "scan-token")
    assert volume["secret"]["secretName"] == token_secret_name(SPEC.scan_id)
    return {f"{mount['mountPath']}/{i['path']}": i["key"] for i in volume["secret"]["items"]}


# --- manifests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "image_pull_secrets": ["ghcr"],
            "node_selector": {"kubernetes.io/arch": "amd64"},
            "priority_class": "scans",
            "config_map": None,
            "service_account": None,
        },
    ],
)
def test_every_job_validates_against_kubernetes(overrides: dict[str, Any]) -> None:
    launcher = KubernetesLauncher(settings(**overrides))
    validate(launcher.server_job_manifest(SPEC))
    for cluster in SPEC.clusters:
        validate(launcher.worker_job_manifest(SPEC, cluster))
    validate(launcher.token_secret_manifest(SPEC))


def test_validation_is_not_vacuous() -> None:
    job = KubernetesLauncher(settings()).worker_job_manifest(SPEC, SPEC.clusters[0])
    job["spec"]["parallelizm"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(job)


def test_server_job_manifest() -> None:
    job = KubernetesLauncher(settings()).server_job_manifest(SPEC, name="sd-x-server-abc123")
    meta, spec = job["metadata"], job["spec"]
    assert meta["name"] == "sd-x-server-abc123" and meta["namespace"] == NS
    assert meta["labels"] == {
        "app.kubernetes.io/name": "skydriver",
        "app.kubernetes.io/instance": "sky",
        "app.kubernetes.io/component": "scan-server",
        "app.kubernetes.io/part-of": "skydriver",
        "app.kubernetes.io/managed-by": "skydriver-api",
        LABEL_SCAN_ID: SPEC.scan_id,
    }
    assert spec["template"]["metadata"]["labels"] == meta["labels"]
    assert meta["annotations"]["skydriver.io/scan-id"] == SPEC.scan_id
    assert spec["backoffLimit"] == 0 and spec["completions"] == 1 and spec["parallelism"] == 1
    assert spec["ttlSecondsAfterFinished"] == 3600 and spec["activeDeadlineSeconds"] == 172800
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "sky-skydriver-scan"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    (c,) = pod["containers"]
    assert c["image"] == "registry.example.org/skydriver:1.2.3"  # the operator's setting
    assert [c["command"][0], *c["args"]] == ["skydriver", "server", "--scan-id", SPEC.scan_id]
    assert c["resources"] == {
        "requests": {"cpu": "1", "memory": "1024Mi", "ephemeral-storage": "1024Mi"},
        "limits": {"cpu": "1", "memory": "1024Mi", "ephemeral-storage": "1024Mi"},
    }
    env = {e["name"]: e for e in c["env"]}
    assert "SKYDRIVER_RABBITMQ_URL" not in env  # the shared administrator URL stays with the API
    # the server's own broker identity and the scan key, as files of the scan's Secret
    files = secret_files(job)
    assert files == {
        f"{MOUNT}/token": "token",
        f"{MOUNT}/server-broker-url": "server-broker-url",
        f"{MOUNT}/scan-key": "scan-key",
    }
    assert files[env["SKYDRIVER_BROKER_URL_FILE"]["value"]] == "server-broker-url"
    assert files[env["SKYDRIVER_SCAN_KEY_FILE"]["value"]] == "scan-key"
    assert files[env["SKYDRIVER_SCAN_TOKEN_FILE"]["value"]] == "token"
    assert env["SKYDRIVER_MONGODB_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "sky-skydriver",
        "key": "mongodb-uri",
    }
    assert env["SKYDRIVER_SCAN_TOKEN_FILE"]["value"] == "/var/run/skydriver/scan/token"
    assert env["SKYDRIVER_API_URL"]["value"] == SPEC.api_url
    assert c["envFrom"] == [{"configMapRef": {"name": "sky-skydriver", "optional": True}}]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "scan-token")
    assert mount == {"name": "scan-token", "mountPath": "/var/run/skydriver/scan", "readOnly": True}
    volume = next(v for v in pod["volumes"] if v["name"] == "scan-token")
    assert volume["secret"]["secretName"] == token_secret_name(SPEC.scan_id)


def test_worker_job_manifest_honours_the_request() -> None:
    cluster = SPEC.clusters[1]
    job = KubernetesLauncher(settings()).worker_job_manifest(SPEC, cluster)
    spec = job["spec"]
    assert spec["parallelism"] == 5 and "completions" not in spec  # a work-queue Job
    assert spec["backoffLimit"] == 10
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "scan-worker"
    assert job["metadata"]["labels"][LABEL_CLUSTER] == "k8s-b"
    pod = spec["template"]["spec"]
    assert pod["activeDeadlineSeconds"] == 7200  # max_worker_runtime_s bounds every worker pod
    (c,) = pod["containers"]
    assert c["args"] == ["worker", "--scan-id", SPEC.scan_id]
    assert c["image"] == "registry.example.org/skydriver:1.2.3"
    assert c["resources"]["requests"] == {"cpu": "1500m", "memory": "3000Mi", "ephemeral-storage": "5000Mi"}
    assert c["resources"]["limits"] == c["resources"]["requests"]
    env = {e["name"]: e for e in c["env"]}
    assert "SKYDRIVER_MONGODB_URI" not in env and "SKYDRIVER_RABBITMQ_URL" not in env
    refs = [e for e in c["env"] if "valueFrom" in e]
    assert refs == []  # nothing of the deployment's Secret: no database, no administrator URL
    # the worker identity and the key; the server's broker URL is not even mounted
    files = secret_files(job)
    assert files == {
        f"{MOUNT}/token": "token",
        f"{MOUNT}/worker-broker-url": "worker-broker-url",
        f"{MOUNT}/scan-key": "scan-key",
    }
    assert files[env["SKYDRIVER_BROKER_URL_FILE"]["value"]] == "worker-broker-url"
    assert files[env["SKYDRIVER_SCAN_KEY_FILE"]["value"]] == "scan-key"
    assert "server-broker-url" not in json.dumps(job)
    rules = spec["podFailurePolicy"]["rules"]
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules


def test_no_secret_is_ever_a_literal_value() -> None:
    launcher = KubernetesLauncher(settings())
    for job in (launcher.server_job_manifest(SPEC), launcher.worker_job_manifest(SPEC, SPEC.clusters[0])):
        text = json.dumps(job)  # env literals, args, annotations: none holds a secret
        assert [secret for secret in SECRETS if secret in text] == []
        for e in job["spec"]["template"]["spec"]["containers"][0]["env"]:
            if re.search(r"URL|URI|TOKEN|PASS|KEY", e["name"]) and "value" in e:
                assert e["name"] in (
                    "SKYDRIVER_API_URL",
                    "SKYDRIVER_SCAN_TOKEN_FILE",
                    "SKYDRIVER_BROKER_URL_FILE",
                    "SKYDRIVER_SCAN_KEY_FILE",
                )
                assert e["name"] == "SKYDRIVER_API_URL" or e["value"].startswith(MOUNT + "/")
    # the Secret holds them all (stringData, sent to the API server only)
    assert launcher.token_secret_manifest(SPEC)["stringData"] == SECRET_DATA
    assert [secret for secret in SECRETS if secret in repr(SPEC)] == []


@pytest.mark.parametrize("scan_id", ["A" * 64, "scan id/with:odd chars", "x"])
def test_names_and_labels_are_valid_for_any_scan_id(scan_id: str) -> None:
    cluster = WorkerCluster("Cluster_With.Long-Name" * 3, 2)
    spec = spec_for(scan_id, clusters=(cluster,))
    launcher = KubernetesLauncher(settings())
    for job in (launcher.server_job_manifest(spec), launcher.worker_job_manifest(spec, spec.clusters[0])):
        validate(job)
        name = job["metadata"]["name"]
        assert len(name) <= 52 and DNS_LABEL.match(name), name
        assert job["metadata"]["annotations"]["skydriver.io/scan-id"] == scan_id
    assert len(token_secret_name(scan_id)) <= 63 and DNS_LABEL.match(token_secret_name(scan_id))
    assert scan_label(scan_id) != scan_label(scan_id + "y")


# --- through the real client, against the local API server ------------------------------------------


def test_launch_creates_token_secret_and_jobs(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    server = launcher.launch_server(SPEC)
    workers = [launcher.launch_workers(SPEC, c) for c in SPEC.clusters]
    for handles in (server, *workers):
        text = json.dumps(handles)  # JSON-serialisable, no secrets
        assert [secret for secret in SECRETS if secret in text] == []
    assert server == {
        "launcher": "kubernetes",
        "namespace": NS,
        "server_job": server["server_job"],
        "token_secret": token_secret_name(SPEC.scan_id),
    }
    assert [w["workers"] for w in workers] == [3, 5] and [w["cluster"] for w in workers] == ["k8s-a", "k8s-b"]

    # the Secret holds the token and credentials (sent as stringData, never in a Job), each Job is one
    # of its owners
    for create_secret in api.requests_for("POST", "Secret"):  # later creates answer 409 and change nothing
        assert create_secret.body["stringData"] == SECRET_DATA
        assert create_secret.body["metadata"]["labels"][LABEL_SCAN_ID] == SPEC.scan_id
    assert api.names("Secret", NS) == [token_secret_name(SPEC.scan_id)]
    assert api.requests_for("PUT", "Secret") and all(  # owner updates keep the token unchanged
        "stringData" not in r.body for r in api.requests_for("PUT", "Secret")
    )
    secret = api.get("Secret", NS, token_secret_name(SPEC.scan_id))
    assert secret is not None
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == SECRET_DATA
    jobs = {name: api.get("Job", NS, name) for name in api.names("Job", NS)}
    assert set(jobs) == {server["server_job"], *(w["worker_jobs"][0] for w in workers)}
    owners = {(o["kind"], o["name"], o["uid"]) for o in secret["metadata"]["ownerReferences"]}
    assert owners == {("Job", n, j["metadata"]["uid"]) for n, j in jobs.items() if j}

    # the bodies sent are exactly the manifests (which validate), namespaced and labelled
    posted = [r.body for r in api.requests_for("POST", "Job")]
    worker_jobs = [w["worker_jobs"][0] for w in workers]
    assert [b["metadata"]["name"] for b in posted] == [server["server_job"], *worker_jobs]
    assert posted[0] == launcher.server_job_manifest(SPEC, name=server["server_job"])
    assert posted[1] == launcher.worker_job_manifest(SPEC, SPEC.clusters[0], name=worker_jobs[0])
    assert [b["spec"]["parallelism"] for b in posted[1:]] == [3, 5]
    for body in posted:
        validate(body)
        assert [secret for secret in SECRETS if secret in json.dumps(body)] == []
    assert api.unexpected == []


def test_add_workers_creates_another_job(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    first = launcher.launch_workers(SPEC, WorkerCluster("k8s-a", 2))
    more = launcher.launch_workers(SPEC, WorkerCluster("k8s-a", 4))
    assert first["worker_jobs"] != more["worker_jobs"]
    assert sorted(api.get("Job", NS, n)["spec"]["parallelism"] for n in api.names("Job", NS)) == [2, 4]


def test_new_token_replaces_the_secret(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    launcher.launch_server(SPEC)
    rescan = spec_for(SPEC.scan_id, token="a-new-token", clusters=SPEC.clusters)
    launcher.launch_workers(rescan, SPEC.clusters[0])
    secret = api.get("Secret", NS, token_secret_name(SPEC.scan_id))
    assert secret is not None
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {**SECRET_DATA, "token": "a-new-token"}  # the credentials stay with the new token
    assert len(secret["metadata"]["ownerReferences"]) == 2


def test_new_credentials_replace_those_of_the_secret(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    """A Secret left by an older launch (only a token, or other credentials) gets the scan's current ones."""
    launcher.launch_server(SPEC)
    rotated = ScanCredentials(
        server_broker_url="amqp://s:sp2@rabbit:5672/%2F",
        worker_broker_url="amqp://w:wp2@rabbit:5672/%2F",
        scan_key="11ee" * 16,
    )
    relaunch = LaunchSpec(scan_id=SPEC.scan_id, scan_token=TOKEN, clusters=(), credentials=rotated)
    launcher.launch_server(relaunch)
    secret = api.get("Secret", NS, token_secret_name(SPEC.scan_id))
    assert secret is not None
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "token": TOKEN,
        "server-broker-url": rotated.server_broker_url,
        "worker-broker-url": rotated.worker_broker_url,
        "scan-key": rotated.scan_key,
    }
    puts = [r for r in api.requests_for("PUT", "Secret") if "stringData" in r.body]
    assert len(puts) == 1  # one replacement; an unchanged Secret is left alone
    launcher.launch_server(relaunch)
    assert len([r for r in api.requests_for("PUT", "Secret") if "stringData" in r.body]) == 1


def test_quota_error_is_a_launch_error(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    api.fail_next(
        "POST",
        "Job",
        403,
        "Forbidden",
        'jobs.batch "x" is forbidden: exceeded quota: skydriver-job-quota, requested: count/jobs.batch=1',
    )
    with pytest.raises(LaunchError, match="403 Forbidden: .*exceeded quota") as err:
        launcher.launch_server(SPEC)
    assert [secret for secret in SECRETS if secret in str(err.value)] == []
    assert api.names("Job", NS) == []


def test_status_reads_pods_and_jobs(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    server = launcher.launch_server(SPEC)
    a = launcher.launch_workers(SPEC, SPEC.clusters[0])["worker_jobs"][0]
    b = launcher.launch_workers(SPEC, SPEC.clusters[1])["worker_jobs"][0]
    assert launcher.status(SPEC.scan_id, server) == WorkforceStatus(server="pending", workers={})

    api.add_pod(NS, server["server_job"], phase="Running")
    api.add_pod(NS, a, phase="Running")
    api.add_pod(NS, a, phase="Running")
    api.add_pod(NS, a, phase="Pending", waiting=("ImagePullBackOff", 'Back-off pulling image "x"'))
    api.add_pod(NS, b, phase="Pending", unschedulable="0/3 nodes are available: 3 Insufficient cpu.")
    api.add_pod(NS, b, phase="Pending", unschedulable="0/3 nodes are available: 3 Insufficient cpu.")
    api.add_pod(NS, b, phase="Failed", terminated=("OOMKilled", 137, ""))
    api.add_pod(NS, b, phase="Succeeded")
    api.set_job_status(
        NS,
        b,
        {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        },
    )
    status = launcher.status(SPEC.scan_id, server)
    assert status.server == "running" and status.server_reason is None
    assert status.workers == {"running": 2, "pending": 3, "failed": 1, "succeeded": 1}
    assert status.reasons == [
        'worker[k8s-a]: ImagePullBackOff: Back-off pulling image "x"',
        "worker[k8s-b]: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu. (x2)",
        "worker[k8s-b]: OOMKilled (exit code 137)",
        f"worker Job {b} [k8s-b]: BackoffLimitExceeded: Job has reached the specified backoff limit",
    ]
    json.dumps(status.to_dict())
    # only list calls with the scan's label selector
    lists = [r for r in api.requests if r.method == "GET"]
    assert {r.kind for r in lists} >= {"Job", "Pod"}
    selector = f"app.kubernetes.io/name=skydriver,{LABEL_SCAN_ID}={SPEC.scan_id}"
    assert all(r.query["labelSelector"] == [selector] for r in lists if r.kind in ("Job", "Pod"))


def test_status_of_a_failed_and_a_finished_server(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    server = launcher.launch_server(SPEC)
    api.add_pod(NS, server["server_job"], phase="Failed", terminated=("OOMKilled", 137, ""))
    api.set_job_status(
        NS,
        server["server_job"],
        {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        },
    )
    status = launcher.status(SPEC.scan_id, server)
    assert status.server == "failed"
    assert status.server_reason == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit (OOMKilled (exit code 137))"
    )

    # a replacement server: the handles name the new Job, the old one is ignored
    replacement = launcher.launch_server(SPEC)
    api.set_job_status(
        NS,
        replacement["server_job"],
        {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1},
    )
    assert launcher.status(SPEC.scan_id, replacement).server == "succeeded"


def test_status_of_a_server_pod_being_replaced(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    server = launcher.launch_server(SPEC)
    api.add_pod(NS, server["server_job"], phase="Failed", reason="Evicted")
    status = launcher.status(SPEC.scan_id, server)
    assert (status.server, status.server_reason) == ("pending", "previous pod: Evicted")
    api.add_pod(NS, server["server_job"], phase="Pending", waiting=("ErrImagePull", "manifest unknown"))
    status = launcher.status(SPEC.scan_id, server)
    assert (status.server, status.server_reason) == ("pending", "ErrImagePull: manifest unknown")


def test_status_when_the_server_job_is_gone(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    status = launcher.status("nothing-here", {"server_job": "sd-nothing-server-000000", "namespace": NS})
    assert status.server == "unknown"
    assert status.server_reason is not None and "sd-nothing-server-000000 not found" in status.server_reason


def test_api_errors_in_status_raise_instead_of_reporting_a_dead_server(
    api: FakeKubeAPI, launcher: KubernetesLauncher
) -> None:
    server = launcher.launch_server(SPEC)
    api.fail_next("GET", "Pod", 503, "ServiceUnavailable", "etcdserver: leader changed")
    with pytest.raises(LaunchError, match="503 Service Unavailable: etcdserver: leader changed"):
        launcher.status(SPEC.scan_id, server)
    assert launcher.status(SPEC.scan_id, server).server == "pending"


def test_abort_deletes_every_job_in_the_foreground(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    server = launcher.launch_server(SPEC)
    launcher.launch_workers(SPEC, SPEC.clusters[0])  # its handles are "lost": found by label
    api.add_pod(NS, server["server_job"], phase="Running")
    other = spec_for("another-scan", token="t2", clusters=(WorkerCluster("k8s-a", 1),))
    kept = launcher.launch_server(other)

    launcher.abort(SPEC.scan_id, server)
    deletes = api.requests_for("DELETE", "Job")
    assert len(deletes) == 2
    assert all(r.body == {"propagationPolicy": "Foreground"} for r in deletes)
    assert api.names("Job", NS) == [kept["server_job"]]
    assert api.names("Secret", NS) == [token_secret_name("another-scan")]
    assert api.names("Pod", NS) == []
    launcher.abort(SPEC.scan_id, server)  # idempotent: 404s are fine


def test_rbac_rules_cover_exactly_the_calls_made(api: FakeKubeAPI, launcher: KubernetesLauncher) -> None:
    server = launcher.launch_server(SPEC)
    launcher.launch_workers(SPEC, SPEC.clusters[0])
    launcher.launch_workers(spec_for(SPEC.scan_id, token="new"), SPEC.clusters[1])
    launcher.status(SPEC.scan_id, server)
    launcher.abort(SPEC.scan_id, server)
    resources = {"Job": ("batch", "jobs"), "Pod": ("", "pods"), "Secret": ("", "secrets")}
    used = {(*resources[r.kind or ""], r.verb) for r in api.requests}
    assert used == {(g, res, v) for g, res, verbs in RBAC_RULES for v in verbs}


def test_kubeconfig_credentials(api: FakeKubeAPI, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "other",
                "clusters": [
                    {"name": "local", "cluster": {"server": api.url}},
                    {"name": "elsewhere", "cluster": {"server": "http://127.0.0.1:9"}},
                ],
                "users": [{"name": "u", "user": {"token": "kube-bearer-token"}}],
                "contexts": [
                    {"name": "test", "context": {"cluster": "local", "user": "u", "namespace": NS}},
                    {"name": "other", "context": {"cluster": "elsewhere", "user": "u"}},
                ],
            }
        )
    )
    launcher = KubernetesLauncher(settings(kubeconfig=kubeconfig, context="test"))
    handles = launcher.launch_server(SPEC)
    assert api.names("Job", NS) == [handles["server_job"]]


def test_missing_credentials_is_a_launch_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    with pytest.raises(LaunchError, match="no Kubernetes credentials"):
        KubernetesLauncher(settings()).launch_server(SPEC)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYDRIVER_K8S_NAMESPACE", "scans")
    monkeypatch.setenv("SKYDRIVER_K8S_IMAGE_PULL_SECRETS", '["a", "b"]')
    monkeypatch.setenv("SKYDRIVER_K8S_SERVER_MEMORY_MB", "4096")
    s = KubernetesLauncher().settings
    assert (s.namespace, s.image_pull_secrets, s.server_memory_mb) == ("scans", ["a", "b"], 4096)


def test_in_cluster_credentials_are_preferred(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kubernetes.config import incluster_config

    token, cert = tmp_path / "token", tmp_path / "ca.crt"
    token.write_text("service-account-token")
    cert.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(cert))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    conf = load_configuration(settings())
    assert conf.host == "https://10.96.0.1:443"
    assert conf.ssl_ca_cert == str(cert)
    assert conf.api_key["BearerToken"] == "bearer service-account-token"
    assert conf.refresh_api_key_hook is not None  # projected tokens rotate; the client re-reads them


def test_unreachable_api_server_is_a_launch_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = k8s.Configuration(host=f"http://127.0.0.1:{port}")
    conf.retries = 0
    launcher = KubernetesLauncher(settings(request_timeout_s=2), k8s.ApiClient(conf))
    with pytest.raises(LaunchError, match="cannot reach the API server"):
        launcher.launch_server(SPEC)
    with pytest.raises(LaunchError, match="cannot reach the API server"):
        launcher.status(SPEC.scan_id, {})
    with pytest.raises(LaunchError, match="cannot list Jobs"):
        launcher.abort(SPEC.scan_id, {})
