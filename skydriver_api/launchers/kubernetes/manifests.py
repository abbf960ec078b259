"""The manifests of a scan: its credentials Secret and its server and worker Jobs, as plain dicts.

Pure functions of a :class:`LaunchSpec` and :class:`KubernetesSettings` (no API call), so the tests
validate every manifest against the Kubernetes schemas and compare them with what was posted.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any, Literal

from skydriver_api.launchers.base import LaunchError, LaunchSpec, WorkerCluster
from skydriver_api.launchers.kubernetes.settings import KubernetesSettings

LABEL_SCAN_ID = "skydriver.io/scan-id"
LABEL_CLUSTER = "skydriver.io/cluster"
ANNOTATION_SCAN_ID = "skydriver.io/scan-id"
COMPONENT_SERVER = "scan-server"
COMPONENT_WORKER = "scan-worker"
TOKEN_KEY = "token"
SERVER_BROKER_KEY = "server-broker-url"
WORKER_BROKER_KEY = "worker-broker-url"
SCAN_KEY_KEY = "scan-key"
TOKEN_MOUNT_DIR = "/var/run/skydriver/scan"
#: the keys of the scan's Secret each role's pods see (a ``secret`` volume with these ``items``):
#: workers never see the server's broker URL
ROLE_KEYS: dict[str, tuple[str, ...]] = {
    "server": (TOKEN_KEY, SERVER_BROKER_KEY, SCAN_KEY_KEY),
    "worker": (TOKEN_KEY, WORKER_BROKER_KEY, SCAN_KEY_KEY),
}


# --- names and labels -----------------------------------------------------------------------------

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


def _digest(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _slug(text: str, limit: int) -> str:
    """A DNS-1123 label fragment of at most ``limit`` chars; a hash keeps distinct inputs distinct."""
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if slug == text and len(slug) <= limit:
        return slug
    keep = max(0, limit - 9)
    head = slug[:keep].strip("-")
    return f"{head}-{_digest(text)}" if head else _digest(text)


def scan_label(scan_id: str) -> str:
    """The scan id as a label value (itself when valid, else a hashed form)."""
    if _LABEL_VALUE.match(scan_id):
        return scan_id
    return _slug(scan_id, 63)


def scan_selector(scan_id: str, component: str | None = None) -> str:
    sel = f"app.kubernetes.io/name=skydriver,{LABEL_SCAN_ID}={scan_label(scan_id)}"
    return f"{sel},app.kubernetes.io/component={component}" if component else sel


def token_secret_name(scan_id: str) -> str:
    return f"sd-{_slug(scan_id, 40)}-token"


def job_name(scan_id: str, role: str) -> str:
    # <= 52 chars: the Job controller appends "-xxxxx" to pod names, which must stay <= 63
    return f"sd-{_slug(scan_id, 24)}-{_slug(role, 14)}-{secrets.token_hex(3)}"


# --- manifests ------------------------------------------------------------------------------------


class ScanManifests:
    """Builds the Secret and Jobs of a scan under ``settings``."""

    def __init__(self, settings: KubernetesSettings) -> None:
        self.settings = settings

    def labels(self, scan_id: str, component: str, cluster: str | None = None) -> dict[str, str]:
        labels = {
            "app.kubernetes.io/name": "skydriver",
            "app.kubernetes.io/instance": self.settings.instance,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "skydriver",
            "app.kubernetes.io/managed-by": "skydriver-api",
            LABEL_SCAN_ID: scan_label(scan_id),
        }
        if cluster is not None:
            labels[LABEL_CLUSTER] = _slug(cluster, 63)
        return labels

    def token_secret_manifest(self, spec: LaunchSpec) -> dict[str, Any]:
        """The scan's Secret: its token, both broker identities and its signing key (stringData)."""
        c = spec.credentials
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": token_secret_name(spec.scan_id),
                "namespace": self.settings.namespace,
                "labels": self.labels(spec.scan_id, "scan-token"),
                "annotations": {ANNOTATION_SCAN_ID: spec.scan_id},
            },
            "type": "Opaque",
            "stringData": {
                TOKEN_KEY: spec.scan_token,
                SERVER_BROKER_KEY: c.server_broker_url,
                WORKER_BROKER_KEY: c.worker_broker_url,
                SCAN_KEY_KEY: c.scan_key,
            },
        }

    def _container(
        self, spec: LaunchSpec, role: Literal["server", "worker"], cpu: float, memory_mb: int, disk_mb: int
    ) -> dict[str, Any]:
        s = self.settings
        broker_key = SERVER_BROKER_KEY if role == "server" else WORKER_BROKER_KEY
        # paths of files of the scan's Secret (mounted below), never the secrets themselves; the
        # shared administrator broker URL is not among them
        env: list[dict[str, Any]] = [
            {"name": "SKYDRIVER_SCAN_TOKEN_FILE", "value": f"{TOKEN_MOUNT_DIR}/{TOKEN_KEY}"},
            {"name": "SKYDRIVER_BROKER_URL_FILE", "value": f"{TOKEN_MOUNT_DIR}/{broker_key}"},
            {"name": "SKYDRIVER_SCAN_KEY_FILE", "value": f"{TOKEN_MOUNT_DIR}/{SCAN_KEY_KEY}"},
        ]
        if role == "server":  # workers never touch the database
            env.append(
                {
                    "name": "SKYDRIVER_MONGODB_URI",
                    "valueFrom": {"secretKeyRef": {"name": s.secret_name, "key": s.mongodb_uri_key}},
                }
            )
        if spec.api_url:
            env.append({"name": "SKYDRIVER_API_URL", "value": spec.api_url})
        env += [
            {"name": "HOME", "value": "/tmp"},
            {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ]
        cpu_q = _cpu_quantity(cpu)
        container: dict[str, Any] = {
            "name": role,
            "image": s.image,  # the operator's, never the scan's
            "imagePullPolicy": s.image_pull_policy,
            "command": ["skydriver"],
            "args": [role, "--scan-id", spec.scan_id],
            "env": env,
            "resources": {
                "requests": {"cpu": cpu_q, "memory": f"{memory_mb}Mi", "ephemeral-storage": f"{disk_mb}Mi"},
                "limits": {"cpu": cpu_q, "memory": f"{memory_mb}Mi", "ephemeral-storage": f"{disk_mb}Mi"},
            },
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [
                {"name": "scan-token", "mountPath": TOKEN_MOUNT_DIR, "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
            "terminationMessagePolicy": "FallbackToLogsOnError",
        }
        if s.config_map:
            container["envFrom"] = [{"configMapRef": {"name": s.config_map, "optional": True}}]
        return container

    def _pod_spec(
        self, spec: LaunchSpec, role: Literal["server", "worker"], container: dict[str, Any], tmp_mb: int
    ) -> dict[str, Any]:
        s = self.settings
        pod: dict[str, Any] = {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": s.run_as_user,
                "runAsGroup": s.run_as_user,
                "fsGroup": s.run_as_user,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {
                    "name": "scan-token",
                    "secret": {
                        "secretName": token_secret_name(spec.scan_id),
                        "defaultMode": 0o440,
                        "items": [{"key": k, "path": k} for k in ROLE_KEYS[role]],
                    },
                },
                {"name": "tmp", "emptyDir": {"sizeLimit": f"{tmp_mb}Mi"}},
            ],
        }
        if s.service_account:
            pod["serviceAccountName"] = s.service_account
        if s.image_pull_secrets:
            pod["imagePullSecrets"] = [{"name": n} for n in s.image_pull_secrets]
        if s.node_selector:
            pod["nodeSelector"] = dict(s.node_selector)
        if s.priority_class:
            pod["priorityClassName"] = s.priority_class
        return pod

    def _job(
        self,
        spec: LaunchSpec,
        name: str,
        labels: dict[str, str],
        job_spec: dict[str, Any],
        pod_spec: dict[str, Any],
    ) -> dict[str, Any]:
        annotations = {ANNOTATION_SCAN_ID: spec.scan_id, "skydriver.io/priority": str(spec.priority)}
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": self.settings.namespace,
                "labels": labels,
                "annotations": annotations,
            },
            "spec": {
                **job_spec,
                "ttlSecondsAfterFinished": self.settings.ttl_seconds_after_finished,
                "activeDeadlineSeconds": self.settings.active_deadline_s,
                "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
            },
        }

    def server_job_manifest(self, spec: LaunchSpec, name: str | None = None) -> dict[str, Any]:
        s = self.settings
        container = self._container(spec, "server", s.server_cpu, s.server_memory_mb, s.server_disk_mb)
        pod = self._pod_spec(spec, "server", container, tmp_mb=max(16, s.server_disk_mb // 2))
        pod["terminationGracePeriodSeconds"] = 30
        job_spec = {
            "backoffLimit": 0,  # a replacement server is the reconciler's decision, not the Job's
            "completions": 1,
            "parallelism": 1,
            # an evicted or preempted server pod is recreated without counting as a failure
            "podFailurePolicy": {
                "rules": [
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
        }
        return self._job(
            spec,
            name or job_name(spec.scan_id, "server"),
            self.labels(spec.scan_id, COMPONENT_SERVER),
            job_spec,
            pod,
        )

    def worker_job_manifest(
        self, spec: LaunchSpec, cluster: WorkerCluster, name: str | None = None
    ) -> dict[str, Any]:
        s, r = self.settings, spec.resources
        if cluster.workers < 1:
            raise LaunchError(f"cluster {cluster.name!r}: at least one worker is needed")
        container = self._container(spec, "worker", r.cpus, r.memory_mb, r.disk_mb)
        pod = self._pod_spec(spec, "worker", container, tmp_mb=max(16, r.disk_mb // 2))
        pod["activeDeadlineSeconds"] = r.max_worker_runtime_s  # the maximum runtime of one worker
        pod["terminationGracePeriodSeconds"] = s.termination_grace_s
        job_spec = {
            # work-queue Job: no completions; each worker exits 0 once the scan's queue stays idle
            "parallelism": cluster.workers,
            "backoffLimit": cluster.workers * s.worker_retries,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",  # exit 2: bad configuration, replacing the pod cannot help
                        "onExitCodes": {"containerName": "worker", "operator": "In", "values": [2]},
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
        }
        return self._job(
            spec,
            name or job_name(spec.scan_id, f"w-{cluster.name}"),
            self.labels(spec.scan_id, COMPONENT_WORKER, cluster.name),
            job_spec,
            pod,
        )


def _cpu_quantity(cpus: float) -> str:
    millis = max(1, round(cpus * 1000))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
