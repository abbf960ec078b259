"""HTCondor launcher: each worker cluster of a scan is one HTCondor cluster submitted with ``htcondor2``.

Workers run in the *container* universe (an Apptainer SIF, e.g. on CVMFS, or a ``docker://`` image)
with ``request_cpus/memory/disk`` from the scan request, the scan priority as job priority, and a
maximum runtime enforced by ``periodic_remove``. Every job carries ``SkyDriverScanId`` (and
``SkyDriverCluster``) in its ad: status queries and abort (``condor_rm`` by constraint) use it, so jobs
are found even when their handles were never stored. Add-workers submits another cluster.

Credentials never appear in the job ad (``condor_q -l`` shows it to every user of the pool): the
per-scan token and the broker URL are written to two 0600 files in a 0700 per-scan directory under
``SKYDRIVER_CONDOR_SUBMIT_DIR`` and shipped with ``transfer_input_files``. The worker entrypoint in
the image (``containers/skydriver-condor-worker``) points ``SKYDRIVER_SCAN_TOKEN_FILE`` at the first
and exports the second as ``SKYDRIVER_RABBITMQ_URL`` before ``exec skydriver worker``.

The scan server does not run on HTCondor (it needs MongoDB and a stable address): ``launch_server``,
and the server half of ``status`` and ``abort``, go to a second launcher chosen by
``SKYDRIVER_CONDOR_SERVER_LAUNCHER`` (``kubernetes``: the usual deployment, API and server in the
Helm release, workers on the grid; or ``local``).

Construct with ``HTCondorLauncher()``: it reads :class:`HTCondorSettings`. Tests pass ``settings=``,
a ``server_launcher=`` and a ``schedd_factory=`` (schedd name or ``None`` -> ``htcondor2.Schedd``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import classad2
import htcondor2
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from skydriver_api.launchers.base import Launcher, LaunchError, LaunchSpec, WorkerCluster, WorkforceStatus

log = logging.getLogger(__name__)

ATTR_SCAN_ID = "SkyDriverScanId"
ATTR_CLUSTER = "SkyDriverCluster"
ATTR_MAX_RUNTIME = "SkyDriverMaxRuntime"
ATTR_HOLD_GRACE = "SkyDriverHoldGrace"
TOKEN_FILE = "scan-token"
BROKER_FILE = "broker-url"
MAX_REASONS = 20
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_SAFE_IMAGE = re.compile(r"^[A-Za-z0-9._:/@+-]+$")
_SAFE_URL = re.compile(r"^https?://[^\s\"'$]+$")

# JobStatus codes of the job ad -> the launcher's worker states
_STATES = {1: "pending", 2: "running", 3: "removed", 4: "succeeded", 5: "held", 6: "running", 7: "suspended"}
# what the bindings raise when a schedd or collector cannot be reached or refuses (ValueError: a
# daemon the collector does not know)
_CONDOR_ERRORS = (htcondor2.HTCondorException, RuntimeError, ValueError, OSError)
_PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "HoldReason",
    "HoldReasonCode",
    "HoldReasonSubCode",
    "ExitCode",
    "RemoveReason",
    ATTR_SCAN_ID,
    ATTR_CLUSTER,
]


class HTCondorSettings(BaseSettings):
    """Settings of the HTCondor launcher (environment prefix ``SKYDRIVER_CONDOR_``)."""

    model_config = SettingsConfigDict(env_prefix="SKYDRIVER_CONDOR_", env_file=None, extra="ignore")

    schedd: str | None = Field(None, description="Schedd name to submit to; unset: the local schedd.")
    collector: str | None = Field(None, description="Collector (pool) that locates named schedds.")
    cluster_schedds: dict[str, str] = Field(
        default_factory=dict,
        description='Worker cluster name -> schedd name, JSON, e.g. {"osg": "ap40.uw.osg-htc.org"}. '
        "When set, only these cluster names are accepted.",
    )
    broker_url: SecretStr | None = Field(
        None,
        description="AMQP URL workers use (reachable from the execution points); "
        "unset: SKYDRIVER_RABBITMQ_URL.",
    )
    image: str = Field(
        "docker://ghcr.io/skydriver/skydriver:0.1.0",
        description="Worker image when the scan request names none: a SIF path (e.g. on CVMFS) or docker://.",
    )
    executable: str = Field(
        "/usr/local/bin/skydriver-condor-worker",
        description="Worker entrypoint inside the image.",
    )
    submit_dir: Path = Field(
        Path(".services/condor"),
        description="Per-scan credential files (0600) and job logs live here.",
    )
    spool: bool = Field(False, description="Spool input files to the schedd (a remote schedd needs this).")
    requirements: str | None = Field(None, description="Extra requirements expression, e.g. has_avx2.")
    accounting_group: str | None = Field(None, description="accounting_group of the workers.")
    hold_grace_s: int = Field(3600, ge=0, description="Held workers are removed after this long.")
    worker_retries: int = Field(2, ge=0, description="Restarts of a worker that exits non-zero.")
    keep_worker_output: bool = Field(True, description="Transfer worker stdout/stderr to the submit dir.")
    server_launcher: Literal["kubernetes", "local"] = Field(
        "kubernetes",
        description="Where scan servers run when workers run on HTCondor.",
    )


def _classad_string(value: str) -> str:
    return classad2.quote(value)


def _env_value(value: str) -> str:
    # the "new" environment syntax: single-quoted values, a literal ' doubled
    return "'" + value.replace("'", "''") + "'"


def _container_image(image: str) -> str:
    if image.startswith("/") or "://" in image:
        return image
    return f"docker://{image}"


def _constraint(scan_id: str) -> str:
    return f"{ATTR_SCAN_ID} == {_classad_string(scan_id)}"


class HTCondorLauncher:
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
            if self.settings.server_launcher == "kubernetes":
                from skydriver_api.launchers.kubernetes import KubernetesLauncher

                self._server_launcher = KubernetesLauncher()
            else:
                from skydriver_api.launchers.local import LocalLauncher
                from skydriver_api.settings import get_settings

                self._server_launcher = LocalLauncher(get_settings())
        return self._server_launcher

    def _locate_schedd(self, name: str | None) -> Any:
        if name is None:
            return htcondor2.Schedd()
        pool = self.settings.collector
        collector = htcondor2.Collector(pool) if pool else htcondor2.Collector()
        return htcondor2.Schedd(collector.locate(htcondor2.DaemonType.Schedd, name))

    def schedd_for(self, cluster: str) -> str | None:
        mapping = self.settings.cluster_schedds
        if not mapping:
            return self.settings.schedd
        if cluster not in mapping:
            raise LaunchError(f"unknown HTCondor cluster {cluster!r}; configured: {sorted(mapping)}")
        return mapping[cluster]

    def scan_dir(self, scan_id: str) -> Path:
        if not _SAFE_ID.match(scan_id):
            raise LaunchError(f"scan id {scan_id!r} is not safe in a submit description or a path")
        return self.settings.submit_dir / scan_id

    # --- the submit description (a pure function; parsed by htcondor2.Submit in the tests) ---------

    def submit_description(self, spec: LaunchSpec, cluster: WorkerCluster, scan_dir: Path) -> str:
        s, r = self.settings, spec.resources
        self.scan_dir(spec.scan_id)  # validates the scan id
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", cluster.name):
            raise LaunchError(f"cluster name {cluster.name!r} is not safe in a submit description")
        if cluster.workers < 1:
            raise LaunchError(f"cluster {cluster.name!r}: at least one worker is needed")
        image = _container_image(r.image or s.image)
        # values that reach the submit language: one token each, no line breaks, no quotes
        if not _SAFE_IMAGE.match(image):
            raise LaunchError(f"image {image!r} is not a valid image reference or path")
        if spec.api_url and not _SAFE_URL.match(spec.api_url):
            raise LaunchError(f"API URL {spec.api_url!r} is not safe in a submit description")
        for name, value in (("requirements", s.requirements), ("accounting_group", s.accounting_group)):
            if value and ("\n" in value or "\r" in value):
                raise LaunchError(f"SKYDRIVER_CONDOR_{name.upper()} must be a single line")
        env = {
            "SKYDRIVER_SCAN_TOKEN_FILE": TOKEN_FILE,
            "SKYDRIVER_BROKER_URL_FILE": BROKER_FILE,
            "PYTHONUNBUFFERED": "1",
        }
        if spec.api_url:
            env["SKYDRIVER_API_URL"] = spec.api_url
        lines = [
            f"# SkyDriver scan {spec.scan_id}: {cluster.workers} worker(s) on {cluster.name}",
            "universe = container",
            f"container_image = {image}",
        ]
        if image.startswith("/"):  # a shared filesystem (CVMFS): every execution point has it already
            lines.append("transfer_container = false")
        lines += [
            f"executable = {s.executable}",
            "transfer_executable = false",
            f'arguments = "--scan-id {spec.scan_id}"',
            'environment = "' + " ".join(f"{k}={_env_value(v)}" for k, v in env.items()) + '"',
            f"transfer_input_files = {scan_dir / TOKEN_FILE}, {scan_dir / BROKER_FILE}",
            "should_transfer_files = YES",
            "when_to_transfer_output = ON_EXIT",
            f"request_cpus = {max(1, math.ceil(r.cpus))}",
            f"request_memory = {r.memory_mb}MB",
            f"request_disk = {r.disk_mb}MB",
            f"priority = {int(spec.priority)}",
            f"max_retries = {s.worker_retries}",
            f"batch_name = skydriver-{spec.scan_id}",
            f"My.{ATTR_SCAN_ID} = {_classad_string(spec.scan_id)}",
            f"My.{ATTR_CLUSTER} = {_classad_string(cluster.name)}",
            f"My.{ATTR_MAX_RUNTIME} = {int(r.max_worker_runtime_s)}",
            f"My.{ATTR_HOLD_GRACE} = {int(s.hold_grace_s)}",
            # the maximum worker runtime, and no worker left held forever
            "periodic_remove = (JobStatus == 2 && (time() - JobCurrentStartDate) > "
            f"{ATTR_MAX_RUNTIME}) || (JobStatus == 5 && (time() - EnteredCurrentStatus) > {ATTR_HOLD_GRACE})",
            f"log = {scan_dir / 'condor.log'}",
        ]
        if s.keep_worker_output:
            lines += [
                f"output = {scan_dir / '$(ClusterId).$(ProcId).out'}",
                f"error = {scan_dir / '$(ClusterId).$(ProcId).err'}",
            ]
        if s.requirements:
            lines.append(f"requirements = {s.requirements}")
        if s.accounting_group:
            lines.append(f"accounting_group = {s.accounting_group}")
        lines.append(f"queue {cluster.workers}")
        return "\n".join(lines) + "\n"

    def write_credentials(self, spec: LaunchSpec) -> Path:
        """The per-scan token and broker URL as 0600 files in a 0700 directory; returns the directory."""
        broker = self.settings.broker_url
        if broker is None:
            from skydriver_api.settings import get_settings

            broker = get_settings().rabbitmq_url
        scan_dir = self.scan_dir(spec.scan_id).resolve()
        scan_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(scan_dir, 0o700)
        for name, value in ((TOKEN_FILE, spec.scan_token), (BROKER_FILE, broker.get_secret_value())):
            tmp = scan_dir / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(value + "\n")
            os.replace(tmp, scan_dir / name)
        return scan_dir

    # --- the Launcher protocol ----------------------------------------------------------------------

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
            result = schedd.submit(submit, count=cluster.workers, spool=self.settings.spool)
            if self.settings.spool:
                schedd.spool(result)
        except _CONDOR_ERRORS as exc:
            raise LaunchError(f"submit to schedd {schedd_name or '(local)'} failed: {exc}") from exc
        cluster_id = int(result.cluster())
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
                schedd = self._schedd_factory(name)
                ads = schedd.query(constraint=_constraint(scan_id), projection=_PROJECTION)
            except _CONDOR_ERRORS as exc:
                reasons[f"schedd {name or '(local)'} unreachable: {exc}"] = 1
                continue
            for ad in ads:
                state, why = job_state(ad)
                counts[state] = counts.get(state, 0) + 1
                if why:
                    key = f"worker[{ad.get(ATTR_CLUSTER, '?')}]: {why}"
                    reasons[key] = reasons.get(key, 0) + 1
        return counts, [f"{k} (x{n})" if n > 1 else k for k, n in list(reasons.items())[:MAX_REASONS]]

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
                self._schedd_factory(name).act(
                    htcondor2.JobAction.Remove,
                    _constraint(scan_id),
                    reason=f"SkyDriver: scan {scan_id} stopped",
                )
            except _CONDOR_ERRORS as exc:
                errors.append(f"schedd {name or '(local)'}: {exc}")
        try:
            self.server_launcher.abort(scan_id, handles)
        except LaunchError as exc:
            errors.append(str(exc))
        if not errors:  # the credentials are no longer needed once nothing can start any more
            for name in (TOKEN_FILE, BROKER_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (self.scan_dir(scan_id) / name).unlink()
        if errors:
            raise LaunchError(f"abort {scan_id}: " + "; ".join(errors))

    def forget(self, handles: dict[str, Any]) -> None:
        """Called by the reconciler once a finished scan is reaped: delete its credential files."""
        scan_id = handles.get("condor_scan_id")
        if isinstance(scan_id, str) and _SAFE_ID.match(scan_id):
            for name in (TOKEN_FILE, BROKER_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (self.scan_dir(scan_id) / name).unlink()
        forget = getattr(self._server_launcher, "forget", None)
        if forget is not None:
            forget(handles)

    def purge(self, scan_id: str) -> None:
        """Delete the scan's submit directory (credentials and worker logs)."""
        shutil.rmtree(self.scan_dir(scan_id), ignore_errors=True)


def job_state(ad: Any) -> tuple[str, str | None]:
    """A worker's state from its job ad and, when held or failed, why."""
    code = int(ad.get("JobStatus", 0))
    state = _STATES.get(code, "unknown")
    if state == "held":
        reason = str(ad.get("HoldReason", "held"))
        sub = ad.get("HoldReasonCode")
        return state, f"held: {reason}" + (f" (code {sub})" if sub is not None else "")
    if state == "succeeded" and int(ad.get("ExitCode", 0)) != 0:
        return "failed", f"exit code {ad.get('ExitCode')}"
    if state == "removed":
        return state, f"removed: {ad.get('RemoveReason', '')}".rstrip(": ")
    return state, None
