"""The Kubernetes API calls of the launcher, through the official ``kubernetes`` client.

Nothing else in the launcher talks to the API server, and these are all the calls it makes (the Helm
chart's Role grants exactly :data:`RBAC_RULES`). Every failed call becomes a
:class:`KubernetesAPIError`: status code, reason and the server's message, never the request body.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from skydriver_api.launchers.base import LaunchError
from skydriver_api.launchers.kubernetes.settings import KubernetesSettings

#: (API group, resource, verbs) this module uses; the Helm chart's Role grants exactly these.
RBAC_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("batch", "jobs", ("create", "delete", "list")),
    ("", "pods", ("list",)),
    ("", "secrets", ("create", "delete", "get", "update")),
)


class KubernetesAPIError(LaunchError):
    """A call the API server refused (``status`` set) or that did not reach it (``status`` None)."""

    def __init__(self, exc: ApiException | TransportError) -> None:
        super().__init__(_api_error(exc))
        self.status: int | None = exc.status if isinstance(exc, ApiException) else None


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except (ApiException, TransportError) as exc:
        raise KubernetesAPIError(exc) from exc


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


def load_configuration(settings: KubernetesSettings) -> k8s.Configuration:
    """In-cluster credentials (service-account token) or, outside a cluster, a kubeconfig."""
    conf = k8s.Configuration()
    s = settings
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


class KubernetesAPI:
    """The Jobs, Pods and Secrets calls, each bounded by ``request_timeout_s``."""

    def __init__(self, settings: KubernetesSettings, api_client: k8s.ApiClient | None = None) -> None:
        self.settings = settings
        self._api_client = api_client
        self._batch: k8s.BatchV1Api | None = None
        self._core: k8s.CoreV1Api | None = None

    # credentials are loaded on first use so that constructing the launcher never touches the network
    def _apis(self) -> tuple[k8s.BatchV1Api, k8s.CoreV1Api]:
        if self._batch is None or self._core is None:
            api_client = self._api_client or k8s.ApiClient(load_configuration(self.settings))
            self._batch, self._core = k8s.BatchV1Api(api_client), k8s.CoreV1Api(api_client)
        return self._batch, self._core

    @property
    def _timeout(self) -> float:
        return self.settings.request_timeout_s

    def create_job(self, namespace: str, manifest: dict[str, Any]) -> k8s.V1Job:
        batch, _ = self._apis()
        with _mapped_errors():
            return batch.create_namespaced_job(
                namespace, k8s.V1Job.from_dict(manifest), _request_timeout=self._timeout
            )

    def apply_token_secret(self, namespace: str, manifest: dict[str, Any]) -> None:
        """Create the scan's Secret; if it exists with other values (a rescan's new token), the new
        values replace the old ones (its owners and labels stay)."""
        _, core = self._apis()
        wanted: dict[str, str] = manifest["stringData"]
        with _mapped_errors():
            try:
                core.create_namespaced_secret(
                    namespace, k8s.V1Secret.from_dict(manifest), _request_timeout=self._timeout
                )
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
            existing = core.read_namespaced_secret(
                manifest["metadata"]["name"], namespace, _request_timeout=self._timeout
            )
            encoded = {k: base64.b64encode(v.encode()).decode() for k, v in wanted.items()}
            if (existing.data or {}) == encoded:
                return
            existing.string_data = dict(wanted)
            existing.data = None  # keys the scan no longer has go too
            core.replace_namespaced_secret(
                existing.metadata.name, namespace, existing, _request_timeout=self._timeout
            )

    def add_job_owner(self, namespace: str, secret_name: str, job: k8s.V1Job) -> None:
        """List the Job among the Secret's owners, so the garbage collector deletes it with the last."""
        _, core = self._apis()
        owner = k8s.V1OwnerReference(
            api_version="batch/v1", kind="Job", name=job.metadata.name, uid=job.metadata.uid
        )
        with _mapped_errors():
            for attempt in range(3):  # optimistic concurrency: retry on a resourceVersion conflict
                secret = core.read_namespaced_secret(secret_name, namespace, _request_timeout=self._timeout)
                refs = list(secret.metadata.owner_references or [])
                if any(r.uid == owner.uid for r in refs):
                    return
                secret.metadata.owner_references = [*refs, owner]
                try:
                    core.replace_namespaced_secret(
                        secret.metadata.name, namespace, secret, _request_timeout=self._timeout
                    )
                    return
                except ApiException as exc:
                    if exc.status != 409 or attempt == 2:
                        raise

    def list_jobs(self, namespace: str, label_selector: str) -> list[k8s.V1Job]:
        batch, _ = self._apis()
        with _mapped_errors():
            listed = batch.list_namespaced_job(
                namespace, label_selector=label_selector, _request_timeout=self._timeout
            )
        return list(listed.items)

    def list_pods(self, namespace: str, label_selector: str) -> list[k8s.V1Pod]:
        _, core = self._apis()
        with _mapped_errors():
            listed = core.list_namespaced_pod(
                namespace, label_selector=label_selector, _request_timeout=self._timeout
            )
        return list(listed.items)

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete the Job, its pods first (foreground); a Job already gone is fine."""
        batch, _ = self._apis()
        foreground = k8s.V1DeleteOptions(propagation_policy="Foreground")
        with _mapped_errors(), _gone_is_fine():
            batch.delete_namespaced_job(name, namespace, body=foreground, _request_timeout=self._timeout)

    def delete_secret(self, namespace: str, name: str) -> None:
        """Delete the Secret; one already gone is fine."""
        _, core = self._apis()
        with _mapped_errors(), _gone_is_fine():
            core.delete_namespaced_secret(name, namespace, _request_timeout=self._timeout)


@contextmanager
def _gone_is_fine() -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        if exc.status != 404:
            raise
