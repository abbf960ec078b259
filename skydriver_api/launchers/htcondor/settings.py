"""Settings of the HTCondor launcher, read from the environment (``SKYDRIVER_CONDOR_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HTCondorSettings(BaseSettings):
    """Settings of the HTCondor launcher (environment prefix ``SKYDRIVER_CONDOR_``).

    There is no broker URL among them: each worker gets its scan's own worker identity (an AMQP URL
    reaching only that scan's queues, see ``skydriver_api.broker_identities``), whose host is the
    API's ``SKYDRIVER_RABBITMQ_SCAN_HOST`` when the execution points reach the broker by another name.
    """

    model_config = SettingsConfigDict(env_prefix="SKYDRIVER_CONDOR_", env_file=None, extra="ignore")

    schedd: str | None = Field(None, description="Schedd name to submit to; unset: the local schedd.")
    collector: str | None = Field(None, description="Collector (pool) that locates named schedds.")
    cluster_schedds: dict[str, str] = Field(
        default_factory=dict,
        description='Worker cluster name -> schedd name, JSON, e.g. {"osg": "ap40.uw.osg-htc.org"}. '
        "When set, only these cluster names are accepted.",
    )
    image: str = Field(
        "docker://ghcr.io/skydriver/skydriver:0.1.0",
        description="Worker image (operator configuration only): a SIF path (e.g. on CVMFS) or docker://.",
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
