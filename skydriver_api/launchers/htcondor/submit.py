"""What a worker cluster is submitted with: its submit description and the credential files it ships.

The description is text for ``htcondor2.Submit`` (parsed by the real bindings in the tests); every
value from a scan request that reaches it is checked to be one safe token first. The credentials never
appear in it: they are 0600 files in a 0700 per-scan directory, named in ``transfer_input_files``.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from pathlib import Path

import classad2

from skydriver_api.launchers.base import LaunchError, LaunchSpec, WorkerCluster
from skydriver_api.launchers.htcondor.settings import HTCondorSettings

ATTR_SCAN_ID = "SkyDriverScanId"
ATTR_CLUSTER = "SkyDriverCluster"
ATTR_MAX_RUNTIME = "SkyDriverMaxRuntime"
ATTR_HOLD_GRACE = "SkyDriverHoldGrace"
TOKEN_FILE = "scan-token"
BROKER_FILE = "broker-url"  # the scan's worker broker identity, never the server's nor the admin's
SCAN_KEY_FILE = "scan-key"
CREDENTIAL_FILES = (TOKEN_FILE, BROKER_FILE, SCAN_KEY_FILE)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_SAFE_IMAGE = re.compile(r"^[A-Za-z0-9._:/@+-]+$")
_SAFE_URL = re.compile(r"^https?://[^\s\"'$]+$")


def _classad_string(value: str) -> str:
    return classad2.quote(value)


def _env_value(value: str) -> str:
    # the "new" environment syntax: single-quoted values, a literal ' doubled
    return "'" + value.replace("'", "''") + "'"


def _container_image(image: str) -> str:
    if image.startswith("/") or "://" in image:
        return image
    return f"docker://{image}"


def is_safe_scan_id(scan_id: object) -> bool:
    return isinstance(scan_id, str) and _SAFE_ID.match(scan_id) is not None


def scan_dir(settings: HTCondorSettings, scan_id: str) -> Path:
    """The scan's directory under the submit dir; a scan id unsafe in a path or description is refused."""
    if not is_safe_scan_id(scan_id):
        raise LaunchError(f"scan id {scan_id!r} is not safe in a submit description or a path")
    return settings.submit_dir / scan_id


def submit_description(
    settings: HTCondorSettings, spec: LaunchSpec, cluster: WorkerCluster, scan_dir_path: Path
) -> str:
    s, r = settings, spec.resources
    scan_dir(settings, spec.scan_id)  # validates the scan id
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", cluster.name):
        raise LaunchError(f"cluster name {cluster.name!r} is not safe in a submit description")
    if cluster.workers < 1:
        raise LaunchError(f"cluster {cluster.name!r}: at least one worker is needed")
    image = _container_image(s.image)  # the operator's, never the scan's
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
        "SKYDRIVER_SCAN_KEY_FILE": SCAN_KEY_FILE,
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
        "transfer_input_files = " + ", ".join(str(scan_dir_path / name) for name in CREDENTIAL_FILES),
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
        f"log = {scan_dir_path / 'condor.log'}",
    ]
    if s.keep_worker_output:
        lines += [
            f"output = {scan_dir_path / '$(ClusterId).$(ProcId).out'}",
            f"error = {scan_dir_path / '$(ClusterId).$(ProcId).err'}",
        ]
    if s.requirements:
        lines.append(f"requirements = {s.requirements}")
    if s.accounting_group:
        lines.append(f"accounting_group = {s.accounting_group}")
    lines.append(f"queue {cluster.workers}")
    return "\n".join(lines) + "\n"


def write_credentials(settings: HTCondorSettings, spec: LaunchSpec) -> Path:
    """The scan's token, its worker broker URL and its signing key as 0600 files in a 0700 directory;
    returns the directory. Workers get the scan's own worker identity: never the server's, never the
    shared administrator URL."""
    values = {
        TOKEN_FILE: spec.scan_token,
        BROKER_FILE: spec.credentials.worker_broker_url,
        SCAN_KEY_FILE: spec.credentials.scan_key,
    }
    directory = scan_dir(settings, spec.scan_id).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for name, value in values.items():
        tmp = directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        os.replace(tmp, directory / name)
    return directory


def delete_credentials(settings: HTCondorSettings, scan_id: str) -> None:
    """Delete the scan's credential files (worker logs stay); missing files are fine."""
    for name in CREDENTIAL_FILES:
        with contextlib.suppress(FileNotFoundError):
            (scan_dir(settings, scan_id) / name).unlink()
