"""The Kubernetes launcher: composes the manifests, the API calls and the status derivation."""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client as k8s

from skydriver_api.launchers.base import Launcher, LaunchError, LaunchSpec, WorkerCluster, WorkforceStatus
from skydriver_api.launchers.kubernetes.client import KubernetesAPI, KubernetesAPIError
from skydriver_api.launchers.kubernetes.manifests import ScanManifests, scan_selector, token_secret_name
from skydriver_api.launchers.kubernetes.settings import KubernetesSettings
from skydriver_api.launchers.kubernetes.status import derive_status

log = logging.getLogger(__name__)


class KubernetesLauncher(Launcher):
    """Runs scan servers and workers as Kubernetes Jobs (see the package docstring)."""

    name = "kubernetes"

    def __init__(self, settings: KubernetesSettings | None = None, api_client: k8s.ApiClient | None = None):
        self.settings = settings or KubernetesSettings()
        self.manifests = ScanManifests(self.settings)
        self.api = KubernetesAPI(self.settings, api_client)

    # --- what it creates (validated against the Kubernetes schemas in the tests) -------------------

    def token_secret_manifest(self, spec: LaunchSpec) -> dict[str, Any]:
        return self.manifests.token_secret_manifest(spec)

    def server_job_manifest(self, spec: LaunchSpec, name: str | None = None) -> dict[str, Any]:
        return self.manifests.server_job_manifest(spec, name)

    def worker_job_manifest(
        self, spec: LaunchSpec, cluster: WorkerCluster, name: str | None = None
    ) -> dict[str, Any]:
        return self.manifests.worker_job_manifest(spec, cluster, name)

    # --- the Launcher interface ---------------------------------------------------------------------

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
        ns = handles.get("namespace") or self.settings.namespace
        try:
            jobs = self.api.list_jobs(ns, scan_selector(scan_id))
            pods = self.api.list_pods(ns, scan_selector(scan_id))
        except KubernetesAPIError as exc:
            # not "unknown": the reconciler would take that for a vanished server and start another
            raise LaunchError(f"status of {scan_id}: Kubernetes API: {exc}") from exc
        return derive_status(jobs, pods, handles.get("server_job"))

    def abort(self, scan_id: str, handles: dict[str, Any]) -> None:
        """Delete every Job of the scan (foreground: pods go first) and its token Secret. Idempotent."""
        ns = handles.get("namespace") or self.settings.namespace
        names: set[str] = set()
        if handles.get("server_job"):
            names.add(handles["server_job"])
        names.update(handles.get("worker_jobs") or ())
        try:  # the label finds Jobs whose handles were never stored (a crash between create and store)
            names.update(j.metadata.name for j in self.api.list_jobs(ns, scan_selector(scan_id)))
        except KubernetesAPIError as exc:
            if not names:
                raise LaunchError(f"abort {scan_id}: cannot list Jobs: {exc}") from exc
        errors: list[str] = []
        for name in sorted(names):
            try:
                self.api.delete_job(ns, name)
            except KubernetesAPIError as exc:
                errors.append(f"job {name}: {exc}")
        secret = handles.get("token_secret") or token_secret_name(scan_id)
        try:
            self.api.delete_secret(ns, secret)
        except KubernetesAPIError as exc:
            errors.append(f"secret {secret}: {exc}")
        if errors:
            raise LaunchError(f"abort {scan_id}: " + "; ".join(errors))

    # --- helpers ------------------------------------------------------------------------------------

    def _create_job(self, spec: LaunchSpec, manifest: dict[str, Any]) -> str:
        ns, name = self.settings.namespace, manifest["metadata"]["name"]
        secret = self.token_secret_manifest(spec)
        try:
            self.api.apply_token_secret(ns, secret)
            created = self.api.create_job(ns, manifest)
        except KubernetesAPIError as exc:  # e.g. 403 "exceeded quota": backs off this scan only
            raise LaunchError(f"create Job {name}: {exc}") from exc
        try:
            self.api.add_job_owner(ns, secret["metadata"]["name"], created)
        except KubernetesAPIError as exc:  # the Job runs; abort still deletes the Secret by name
            log.warning("scan %s: could not make Job %s own the token Secret: %s", spec.scan_id, name, exc)
        log.info("scan %s: created Job %s/%s", spec.scan_id, ns, name)
        return name
