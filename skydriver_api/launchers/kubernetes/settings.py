"""Settings of the Kubernetes launcher, read from the environment (``SKYDRIVER_K8S_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KubernetesSettings(BaseSettings):
    """Settings of the Kubernetes launcher (environment prefix ``SKYDRIVER_K8S_``)."""

    model_config = SettingsConfigDict(env_prefix="SKYDRIVER_K8S_", env_file=None, extra="ignore")

    namespace: str = Field("default", description="Namespace of the scan Jobs, Pods and Secrets.")
    kubeconfig: Path | None = Field(
        None,
        description="Kubeconfig file; unset: in-cluster credentials, else the client's default.",
    )
    context: str | None = Field(None, description="Kubeconfig context (with a kubeconfig).")
    image: str = Field(
        "ghcr.io/skydriver/skydriver:0.1.0",
        description="Image of scan servers and workers (operator configuration only).",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[str] = Field(default_factory=list, description="Names of pull Secrets.")
    secret_name: str = Field(
        "skydriver",
        description="The deployment's Secret; scan servers read the MongoDB URI from it (workers nothing). "
        "Scan pods never get its RabbitMQ URL: each scan's own broker identities come in its Secret.",
    )
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
