"""The HTCondor launcher: composes the submit files, the schedd calls and the job-state mapping."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import htcondor2

from skydriver_api.launchers.base import (
    Launcher,
    LaunchError,
    LaunchSpec,
    WorkerCluster,
    WorkforceStatus,
    reason_lines,
)
from skydriver_api.launchers.htcondor import schedd as schedd_calls
from skydriver_api.launchers.htcondor import submit as submit_files
from skydriver_api.launchers.htcondor.settings import HTCondorSettings
from skydriver_api.launchers.htcondor.status import job_state
from skydriver_api.launchers.htcondor.submit import ATTR_CLUSTER
from skydriver_api.launchers.registry import make_launcher

log = logging.getLogger(__name__)


class HTCondorLauncher(Launcher):
    """Submits scan workers to HTCondor; the scan server goes to ``server_launcher``."""

    name = "htcondor"

    def __init__(
        self,
        settings: HTCondorSettings | None = None,
        server_launcher: Launcher | None = None,
        schedd_factory: Callable[[str | None], Any] | None = None,
    ):
        self.settings = settings or HTCondorSettings()
        self._server_launcher = server_launcher
        self._schedd_factory = schedd_factory or self._locate_schedd

    # --- collaborators ------------------------------------------------------------------------------

    @property
    def server_launcher(self) -> Launcher:
        if self._server_launcher is None:
            from skydriver_api.settings import get_settings

            self._server_launcher = make_launcher(get_settings(), self.settings.server_launcher)
        return self._server_launcher

    def _locate_schedd(self, name: str | None) -> Any:
        return schedd_calls.locate_schedd(self.settings.collector, name)

    def schedd_for(self, cluster: str) -> str | None:
        mapping = self.settings.cluster_schedds
        if not mapping:
            return self.settings.schedd
        if cluster not in mapping:
            raise LaunchError(f"unknown HTCondor cluster {cluster!r}; configured: {sorted(mapping)}")
        return mapping[cluster]

    def scan_dir(self, scan_id: str) -> Path:
        return submit_files.scan_dir(self.settings, scan_id)

    # --- what it submits (parsed by htcondor2.Submit in the tests) ---------------------------------

    def submit_description(self, spec: LaunchSpec, cluster: WorkerCluster, scan_dir: Path) -> str:
        return submit_files.submit_description(self.settings, spec, cluster, scan_dir)

    def write_credentials(self, spec: LaunchSpec) -> Path:
        return submit_files.write_credentials(self.settings, spec)

    # --- the Launcher interface ---------------------------------------------------------------------

    def launch_server(self, spec: LaunchSpec) -> dict[str, Any]:
        handles = dict(self.server_launcher.launch_server(spec))
        handles["server_launcher"] = self.server_launcher.name
        return handles

    def launch_workers(self, spec: LaunchSpec, cluster: WorkerCluster) -> dict[str, Any]:
        schedd_name = self.schedd_for(cluster.name)
        description = self.submit_description(spec, cluster, self.scan_dir(spec.scan_id).resolve())
        try:
            self.write_credentials(spec)
            submit = htcondor2.Submit(description)
        except OSError as exc:
            raise LaunchError(f"cannot write the credential files of scan {spec.scan_id}: {exc}") from exc
        except htcondor2.HTCondorException as exc:
            raise LaunchError(f"bad submit description: {exc}") from exc
        try:
            schedd = self._schedd_factory(schedd_name)
            cluster_id = schedd_calls.submit_cluster(schedd, submit, cluster.workers, self.settings.spool)
        except schedd_calls.CONDOR_ERRORS as exc:
            raise LaunchError(f"submit to schedd {schedd_name or '(local)'} failed: {exc}") from exc
        log.info(
            "scan %s: submitted %d worker(s) on %s as HTCondor cluster %d",
            spec.scan_id,
            cluster.workers,
            cluster.name,
            cluster_id,
        )
        return {
            "launcher": self.name,
            "cluster": cluster.name,
            "schedd": schedd_name,
            "condor_cluster_ids": [cluster_id],
            "workers": cluster.workers,
            "condor_scan_id": spec.scan_id,
        }

    def _schedds(self, handles: dict[str, Any]) -> list[str | None]:
        names: list[str | None] = [self.settings.schedd]
        names += list(self.settings.cluster_schedds.values())
        if "schedd" in handles:
            names.append(handles["schedd"])
        return list(dict.fromkeys(names))  # ordered, unique

    def worker_status(self, scan_id: str, handles: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
        counts: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for name in self._schedds(handles):
            try:
                ads = schedd_calls.query_scan(self._schedd_factory(name), scan_id)
            except schedd_calls.CONDOR_ERRORS as exc:
                reasons[f"schedd {name or '(local)'} unreachable: {exc}"] = 1
                continue
            for ad in ads:
                state, why = job_state(ad)
                counts[state] = counts.get(state, 0) + 1
                if why:
                    key = f"worker[{ad.get(ATTR_CLUSTER, '?')}]: {why}"
                    reasons[key] = reasons.get(key, 0) + 1
        return counts, reason_lines(reasons)

    def status(self, scan_id: str, handles: dict[str, Any]) -> WorkforceStatus:
        server = self.server_launcher.status(scan_id, handles)
        counts, reasons = self.worker_status(scan_id, handles)
        return WorkforceStatus(
            server=server.server,
            server_reason=server.server_reason,
            workers=counts,
            reasons=[*server.reasons, *reasons],
        )

    def abort(self, scan_id: str, handles: dict[str, Any]) -> None:
        """Remove every job whose ``SkyDriverScanId`` is the scan's, then the server. Idempotent."""
        errors: list[str] = []
        for name in self._schedds(handles):
            try:
                schedd_calls.remove_scan(self._schedd_factory(name), scan_id)
            except schedd_calls.CONDOR_ERRORS as exc:
                errors.append(f"schedd {name or '(local)'}: {exc}")
        try:
            self.server_launcher.abort(scan_id, handles)
        except LaunchError as exc:
            errors.append(str(exc))
        if errors:
            raise LaunchError(f"abort {scan_id}: " + "; ".join(errors))
        # the credentials are no longer needed once nothing can start any more
        submit_files.delete_credentials(self.settings, scan_id)

    def forget(self, scan_id: str, handles: dict[str, Any]) -> None:
        """Called by the reconciler once an ended scan is reaped: delete its credential files."""
        if submit_files.is_safe_scan_id(scan_id):
            submit_files.delete_credentials(self.settings, scan_id)
        if self._server_launcher is not None:  # none built yet: it has nothing to release
            self._server_launcher.forget(scan_id, handles)

    def cluster_names(self) -> tuple[str, ...] | None:
        return tuple(self.settings.cluster_schedds) or None

    def purge(self, scan_id: str) -> None:
        """Delete the scan's submit directory (credentials and worker logs)."""
        shutil.rmtree(self.scan_dir(scan_id), ignore_errors=True)
