"""Kubernetes launcher: the scan server and each worker cluster run as ``batch/v1`` Jobs.

What it creates for one scan (all in ``SKYDRIVER_K8S_NAMESPACE``, all labelled with the scan id):

* a Secret ``sd-<scan>-token`` holding the per-scan token, mounted read-only as a file into every
  scan pod (``SKYDRIVER_SCAN_TOKEN_FILE``); it lists every Job of the scan as an owner, so the garbage
  collector deletes it with the last of them;
* the server Job (``skydriver server --scan-id ID``): ``backoffLimit: 0`` (the reconciler decides on
  replacement servers), ``activeDeadlineSeconds``, ``ttlSecondsAfterFinished``;
* one worker Job per :class:`WorkerCluster` and per add-workers request
  (``skydriver worker --scan-id ID``) with ``parallelism`` = the requested count (a work-queue Job:
  workers exit 0 when the queue stays idle), each pod bounded by ``max_worker_runtime_s``.

RabbitMQ and MongoDB URIs are never literal values: the pods read them with ``secretKeyRef`` from the
deployment's Secret (``SKYDRIVER_K8S_SECRET_NAME``, written by the Helm chart). Non-secret settings come
from the chart's ConfigMap with ``envFrom`` (``SKYDRIVER_K8S_CONFIG_MAP``).

The Kubernetes API calls this module makes, and nothing else (the Helm chart's Role grants exactly
:data:`RBAC_RULES`): Jobs create/list/delete, Pods list, Secrets create/get/update/delete.

Construct with ``KubernetesLauncher()``: it reads :class:`KubernetesSettings` from the environment and
loads in-cluster credentials (service-account token) or, outside a cluster, a kubeconfig
(``SKYDRIVER_K8S_KUBECONFIG`` / ``SKYDRIVER_K8S_CONTEXT``, or the client's default lookup). Tests pass
``settings=`` and a ready ``api_client=``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from urllib3.exceptions import HTTPError as TransportError

from skydriver_api.launchers.base import LaunchError, LaunchSpec, ProcessState, WorkerCluster, WorkforceStatus

log = logging.getLogger(__name__)

LABEL_SCAN_ID = "skydriver.io/scan-id"
LABEL_CLUSTER = "skydriver.io/cluster"
ANNOTATION_SCAN_ID = "skydriver.io/scan-id"
COMPONENT_SERVER = "scan-server"
COMPONENT_WORKER = "scan-worker"
TOKEN_KEY = "token"
TOKEN_MOUNT_DIR = "/var/run/skydriver/scan"
MAX_REASONS = 20

#: (API group, resource, verbs) this launcher uses; the Helm chart's Role grants exactly these.
RBAC_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("batch", "jobs", ("create", "delete", "list")),
    ("", "pods", ("list",)),
    ("", "secrets", ("create", "delete", "get", "update")),
)


class KubernetesSettings(BaseSettings):
    """Settings of the Kubernetes launcher (environment prefix ``SKYDRIVER_K8S_``)."""

    model_config = SettingsConfigDict(env_prefix="SKYDRIVER_K8S_", env_file=None, extra="ignore")

    namespace: str = Field("default", description="Namespace of the scan Jobs, Pods and token Secrets.")
    kubeconfig: Path | None = Field(
        None,
        description="Kubeconfig file; unset: in-cluster credentials, else the client's default.",
    )
    context: str | None = Field(None, description="Kubeconfig context (with a kubeconfig).")
    image: str = Field(
        "ghcr.io/skydriver/skydriver:0.1.0",
        description="Image of scan servers and workers when the scan request names none.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = Field(default_factory=list, description="Names of pull Secrets.")
    secret_name: str = Field("skydriver", description="Secret holding the RabbitMQ URL and MongoDB URI.")
    rabbitmq_url_key: str = Field("rabbitmq-url", description="Key of the RabbitMQ URL in that Secret.")
    mongodb_uri_key: str = Field("mongodb-uri", description="Key of the MongoDB URI in that Secret.")
    config_map: str | None = Field(
        None,
        description="ConfigMap of non-secret SKYDRIVER_* settings loaded into scan pods (envFrom).",
    )
    service_account: str | None = Field(
        None,
        description="ServiceAccount of scan pods (they need no API access; token not mounted).",
    )
    instance: str = Field("skydriver", description="Value of the app.kubernetes.io/instance label.")
    ttl_seconds_after_finished: int = Field(3600, ge=0, description="Finished Jobs are deleted after this.")
    active_deadline_s: int = Field(
        2 * 86400,
        ge=1,
        description="Upper bound on the lifetime of any scan Job (server and workers).",
    )
    server_cpu: float = Field(1.0, gt=0, description="CPU request/limit of the scan server.")
    server_memory_mb: int = Field(1024, ge=64, description="Memory request/limit of the scan server.")
    server_disk_mb: int = Field(1024, ge=16, description="Ephemeral storage of the scan server.")
    worker_retries: int = Field(
        2,
        ge=0,
        description="Failed worker pods replaced per requested worker (backoffLimit = N x this).",
    )
    termination_grace_s: int = Field(60, ge=0, description="Time a worker gets to hand its pixel back.")
    run_as_user: int = Field(10001, ge=1, description="Non-root uid (and gid, fsGroup) of scan pods.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="nodeSelector of scan pods.")
    priority_class: str | None = Field(None, description="priorityClassName of scan pods.")
    request_timeout_s: float = Field(30.0, gt=0, description="Timeout of one Kubernetes API call.")


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


def _selector(scan_id: str, component: str | None = None) -> str:
    sel = f"app.kubernetes.io/name=skydriver,{LABEL_SCAN_ID}={scan_label(scan_id)}"
    return f"{sel},app.kubernetes.io/component={component}" if component else sel


def token_secret_name(scan_id: str) -> str:
    return f"sd-{_slug(scan_id, 40)}-token"


def _job_name(scan_id: str, role: str) -> str:
    # <= 52 chars: the Job controller appends "-xxxxx" to pod names, which must stay <= 63
    return f"sd-{_slug(scan_id, 24)}-{_slug(role, 14)}-{secrets.token_hex(3)}"


# --- the launcher ---------------------------------------------------------------------------------


class KubernetesLauncher:
    """Runs scan servers and workers as Kubernetes Jobs (see the module docstring)."""

    name = "kubernetes"

    def __init__(self, settings: KubernetesSettings | None = None, api_client: k8s.ApiClient | None = None):
        self.settings = settings or KubernetesSettings()
        self._api_client = api_client
        self._batch: k8s.BatchV1Api | None = None
        self._core: k8s.CoreV1Api | None = None

    # credentials are loaded on first use so that constructing the launcher never touches the network
    def _clients(self) -> tuple[k8s.BatchV1Api, k8s.CoreV1Api]:
        if self._batch is None or self._core is None:
            api_client = self._api_client or k8s.ApiClient(self._load_configuration())
            self._batch, self._core = k8s.BatchV1Api(api_client), k8s.CoreV1Api(api_client)
        return self._batch, self._core

    def _load_configuration(self) -> k8s.Configuration:
        conf = k8s.Configuration()
        s = self.settings
        try:
            if s.kubeconfig is None and s.context is None:
                try:
                    k8s_config.load_incluster_config(client_configuration=conf)
                    return conf
                except k8s_config.ConfigException:
                    pass
            k8s_config.load_kube_config(
                config_file=str(s.kubeconfig) if s.kubeconfig else None,
                context=s.context,
                client_configuration=conf,
                persist_config=False,
            )
        except (k8s_config.ConfigException, OSError) as exc:
            raise LaunchError(f"no Kubernetes credentials: {exc}") from exc
        return conf

    # --- manifests (pure functions of the spec and settings; validated in the tests) ---------------

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
            "stringData": {TOKEN_KEY: spec.scan_token},
        }

    def _container(
        self, spec: LaunchSpec, role: Literal["server", "worker"], cpu: float, memory_mb: int, disk_mb: int
    ) -> dict[str, Any]:
        s = self.settings
        env: list[dict[str, Any]] = [
            {"name": "SKYDRIVER_SCAN_TOKEN_FILE", "value": f"{TOKEN_MOUNT_DIR}/{TOKEN_KEY}"},
            {
                "name": "SKYDRIVER_RABBITMQ_URL",
                "valueFrom": {"secretKeyRef": {"name": s.secret_name, "key": s.rabbitmq_url_key}},
            },
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
            "image": spec.resources.image or s.image,
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

    def _pod_spec(self, spec: LaunchSpec, container: dict[str, Any], tmp_mb: int) -> dict[str, Any]:
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
                        "items": [{"key": TOKEN_KEY, "path": TOKEN_KEY}],
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
        pod = self._pod_spec(spec, container, tmp_mb=max(16, s.server_disk_mb // 2))
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
            name or _job_name(spec.scan_id, "server"),
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
        pod = self._pod_spec(spec, container, tmp_mb=max(16, r.disk_mb // 2))
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
            name or _job_name(spec.scan_id, f"w-{cluster.name}"),
            self.labels(spec.scan_id, COMPONENT_WORKER, cluster.name),
            job_spec,
            pod,
        )

    # --- the Launcher protocol ----------------------------------------------------------------------

    def launch_server(self, spec: LaunchSpec) -> dict[str, Any]:
        job = self._create_job(spec, self.server_job_manifest(spec))
        return {
            "launcher": self.name,
            "namespace": self.settings.namespace,
            "server_job": job,
            "token_secret": token_secret_name(spec.scan_id),
        }

    def launch_workers(self, spec: LaunchSpec, cluster: WorkerCluster) -> dict[str, Any]:
        job = self._create_job(spec, self.worker_job_manifest(spec, cluster))
        return {
            "launcher": self.name,
            "namespace": self.settings.namespace,
            "worker_jobs": [job],
            "cluster": cluster.name,
            "workers": cluster.workers,
            "token_secret": token_secret_name(spec.scan_id),
        }

    def status(self, scan_id: str, handles: dict[str, Any]) -> WorkforceStatus:
        batch, core = self._clients()
        ns, timeout = handles.get("namespace") or self.settings.namespace, self.settings.request_timeout_s
        try:
            jobs = batch.list_namespaced_job(
                ns, label_selector=_selector(scan_id), _request_timeout=timeout
            ).items
            pods = core.list_namespaced_pod(
                ns, label_selector=_selector(scan_id), _request_timeout=timeout
            ).items
        except (ApiException, TransportError) as exc:
            # not "unknown": the reconciler would take that for a vanished server and start another
            raise LaunchError(f"status of {scan_id}: Kubernetes API: {_api_error(exc)}") from exc
        return derive_status(jobs, pods, handles.get("server_job"))

    def abort(self, scan_id: str, handles: dict[str, Any]) -> None:
        """Delete every Job of the scan (foreground: pods go first) and its token Secret. Idempotent."""
        batch, core = self._clients()
        ns, timeout = handles.get("namespace") or self.settings.namespace, self.settings.request_timeout_s
        names: set[str] = set()
        if handles.get("server_job"):
            names.add(handles["server_job"])
        names.update(handles.get("worker_jobs") or ())
        try:  # the label finds Jobs whose handles were never stored (a crash between create and store)
            listed = batch.list_namespaced_job(
                ns, label_selector=_selector(scan_id), _request_timeout=timeout
            )
            names.update(j.metadata.name for j in listed.items)
        except (ApiException, TransportError) as exc:
            if not names:
                raise LaunchError(f"abort {scan_id}: cannot list Jobs: {_api_error(exc)}") from exc
        errors: list[str] = []
        for name in sorted(names):
            try:
                foreground = k8s.V1DeleteOptions(propagation_policy="Foreground")
                batch.delete_namespaced_job(name, ns, body=foreground, _request_timeout=timeout)
            except (ApiException, TransportError) as exc:
                if not _not_found(exc):
                    errors.append(f"job {name}: {_api_error(exc)}")
        secret = handles.get("token_secret") or token_secret_name(scan_id)
        try:
            core.delete_namespaced_secret(secret, ns, _request_timeout=timeout)
        except (ApiException, TransportError) as exc:
            if not _not_found(exc):
                errors.append(f"secret {secret}: {_api_error(exc)}")
        if errors:
            raise LaunchError(f"abort {scan_id}: " + "; ".join(errors))

    # --- helpers ------------------------------------------------------------------------------------

    def _create_job(self, spec: LaunchSpec, manifest: dict[str, Any]) -> str:
        batch, core = self._clients()
        ns, timeout = self.settings.namespace, self.settings.request_timeout_s
        name = manifest["metadata"]["name"]
        try:
            self._ensure_token_secret(core, spec)
            created = batch.create_namespaced_job(ns, k8s.V1Job.from_dict(manifest), _request_timeout=timeout)
        except (ApiException, TransportError) as exc:  # e.g. 403 "exceeded quota": backs off this scan only
            raise LaunchError(f"create Job {name}: {_api_error(exc)}") from exc
        try:
            self._add_secret_owner(core, spec.scan_id, created)
        except (ApiException, TransportError) as exc:  # the Job runs; abort still deletes the Secret by name
            log.warning(
                "scan %s: could not make Job %s own the token Secret: %s", spec.scan_id, name, _api_error(exc)
            )
        log.info("scan %s: created Job %s/%s", spec.scan_id, ns, name)
        return name

    def _ensure_token_secret(self, core: k8s.CoreV1Api, spec: LaunchSpec) -> None:
        ns, timeout = self.settings.namespace, self.settings.request_timeout_s
        manifest = self.token_secret_manifest(spec)
        try:
            core.create_namespaced_secret(ns, k8s.V1Secret.from_dict(manifest), _request_timeout=timeout)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = core.read_namespaced_secret(manifest["metadata"]["name"], ns, _request_timeout=timeout)
        if (existing.data or {}).get(TOKEN_KEY) == base64.b64encode(spec.scan_token.encode()).decode():
            return
        existing.string_data = {TOKEN_KEY: spec.scan_token}  # a new token for this scan replaces the old
        existing.data = None
        core.replace_namespaced_secret(existing.metadata.name, ns, existing, _request_timeout=timeout)

    def _add_secret_owner(self, core: k8s.CoreV1Api, scan_id: str, job: k8s.V1Job) -> None:
        ns, timeout = self.settings.namespace, self.settings.request_timeout_s
        owner = k8s.V1OwnerReference(
            api_version="batch/v1", kind="Job", name=job.metadata.name, uid=job.metadata.uid
        )
        for attempt in range(3):  # optimistic concurrency: retry on a resourceVersion conflict
            secret = core.read_namespaced_secret(token_secret_name(scan_id), ns, _request_timeout=timeout)
            refs = list(secret.metadata.owner_references or [])
            if any(r.uid == owner.uid for r in refs):
                return
            secret.metadata.owner_references = [*refs, owner]
            try:
                core.replace_namespaced_secret(secret.metadata.name, ns, secret, _request_timeout=timeout)
                return
            except ApiException as exc:
                if exc.status != 409 or attempt == 2:
                    raise


# --- status ---------------------------------------------------------------------------------------


def _cpu_quantity(cpus: float) -> str:
    millis = max(1, round(cpus * 1000))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _not_found(exc: Exception) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


def _api_error(exc: ApiException | TransportError) -> str:
    """Status code, reason and the API server's message (never the request body)."""
    if not isinstance(exc, ApiException):
        return f"cannot reach the API server: {type(exc).__name__}: {exc}"
    message = ""
    if exc.body:
        try:
            message = json.loads(exc.body).get("message", "")
        except (ValueError, AttributeError):
            message = str(exc.body)[:300]
    return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")


def _condition(job: k8s.V1Job, kind: str) -> k8s.V1JobCondition | None:
    for cond in (job.status.conditions if job.status else None) or []:
        if cond.type == kind and cond.status == "True":
            return cond
    return None


def pod_state(pod: k8s.V1Pod) -> tuple[ProcessState, str | None]:
    """The pod's state and, when it is stuck or failed, why (ImagePullBackOff, Unschedulable, OOMKilled)."""
    st = pod.status
    phase = (st.phase if st else None) or "Pending"
    statuses = (st.container_statuses if st else None) or []
    if phase == "Pending":
        for cs in statuses:
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason and waiting.reason not in ("ContainerCreating", "PodInitializing"):
                return "pending", waiting.reason + (f": {waiting.message}" if waiting.message else "")
        for cond in (st.conditions if st else None) or []:
            if cond.type == "PodScheduled" and cond.status == "False":
                why = cond.reason or "Unschedulable"
                return "pending", why + (f": {cond.message}" if cond.message else "")
        return "pending", None
    if phase == "Running":
        return "running", None
    if phase == "Succeeded":
        return "succeeded", None
    if phase == "Failed":
        for cs in statuses:
            term = cs.state.terminated if cs.state else None
            if term and term.exit_code != 0:
                why = term.reason or "Error"
                return "failed", f"{why} (exit code {term.exit_code})" + (
                    f": {term.message.strip()[:200]}" if term.message else ""
                )
        return "failed", (st.reason or "Failed") + (f": {st.message}" if st and st.message else "")
    return "unknown", phase


def _created(obj: Any) -> datetime:
    ts = obj.metadata.creation_timestamp
    return ts if isinstance(ts, datetime) else datetime.min.replace(tzinfo=UTC)


def _component(obj: Any) -> str | None:
    return (obj.metadata.labels or {}).get("app.kubernetes.io/component")


def _job_of(pod: k8s.V1Pod) -> str | None:
    labels = pod.metadata.labels or {}
    return labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")


def derive_status(jobs: list[k8s.V1Job], pods: list[k8s.V1Pod], server_job: str | None) -> WorkforceStatus:
    """The scan's workforce as seen in its Jobs and Pods."""
    out = WorkforceStatus()
    reasons: dict[str, int] = {}

    def note(prefix: str, why: str | None) -> None:
        if why:
            key = f"{prefix}: {why}"
            reasons[key] = reasons.get(key, 0) + 1

    servers = sorted((j for j in jobs if _component(j) == COMPONENT_SERVER), key=_created)
    current = next((j for j in servers if j.metadata.name == server_job), None) if server_job else None
    if current is None and servers and not server_job:
        current = servers[-1]
    if current is None:
        out.server = "unknown"
        if server_job:
            out.server_reason = (
                f"Job {server_job} not found (deleted, or removed after ttlSecondsAfterFinished)"
            )
    else:
        server_pods = sorted((p for p in pods if _job_of(p) == current.metadata.name), key=_created)
        pod_states = [pod_state(p) for p in server_pods]
        failed = _condition(current, "Failed")
        if _condition(current, "Complete"):
            out.server = "succeeded"
        elif failed:
            out.server = "failed"
            pod_why = next((why for st, why in reversed(pod_states) if st == "failed" and why), None)
            out.server_reason = (
                f"{failed.reason or 'Failed'}"
                + (f": {failed.message}" if failed.message else "")
                + (f" ({pod_why})" if pod_why else "")
            )
        elif any(st == "running" for st, _ in pod_states):
            out.server = "running"
        else:  # no pod yet, or one being replaced (an evicted pod does not fail the Job)
            out.server = "pending"
            waiting = [why for st, why in pod_states if st == "pending" and why]
            failed = [f"previous pod: {why}" for st, why in pod_states if st == "failed" and why]
            out.server_reason = (waiting or failed[-1:] or [None])[0]

    counts: dict[str, int] = {}
    for pod in sorted(pods, key=lambda p: (_created(p), p.metadata.name)):
        if _component(pod) != COMPONENT_WORKER:
            continue
        state, why = pod_state(pod)
        counts[state] = counts.get(state, 0) + 1
        cluster = (pod.metadata.labels or {}).get(LABEL_CLUSTER, "?")
        note(f"worker[{cluster}]", why)
    for job in sorted(jobs, key=lambda j: (_created(j), j.metadata.name)):
        if _component(job) != COMPONENT_WORKER:
            continue
        failed = _condition(job, "Failed")
        if failed:
            cluster = (job.metadata.labels or {}).get(LABEL_CLUSTER, "?")
            note(
                f"worker Job {job.metadata.name} [{cluster}]",
                (failed.reason or "Failed") + (f": {failed.message}" if failed.message else ""),
            )
    out.workers = counts
    out.reasons = [f"{k} (x{n})" if n > 1 else k for k, n in list(reasons.items())[:MAX_REASONS]]
    return out
