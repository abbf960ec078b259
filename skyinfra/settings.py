"""Settings the processes share: how to reach the broker and the database, the scan token, and
which recos may run.

Each process kind has its own settings class built from these parts: ``skydriver_api.settings.
ApiSettings`` (the API and its reconciler), ``server.settings.ServerSettings`` and
``worker.settings.WorkerSettings``. Every field can be set from the environment with the
``SKYDRIVER_`` prefix, e.g. ``SKYDRIVER_RABBITMQ_URL``. Secrets are ``SecretStr`` so they never end up
in reprs or logs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from skyscan.physics.recos.enabled import enabled_recos

ENV = SettingsConfigDict(env_prefix="SKYDRIVER_", env_file=None, extra="ignore")


class BrokerSettings(BaseSettings):
    model_config = ENV

    rabbitmq_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F"),
        description="AMQP URL of the broker the scan servers and workers share.",
    )
    rabbitmq_heartbeat_s: int = Field(30, ge=0, description="AMQP heartbeat interval.")


class DatabaseSettings(BaseSettings):
    model_config = ENV

    mongodb_uri: SecretStr = Field(SecretStr("mongodb://127.0.0.1:27017"), description="MongoDB URI.")
    mongodb_database: str = Field("skydriver", description="Database that holds every collection.")


class ScanTokenSettings(BaseSettings):
    """The per-scan system token a scan's server and workers present to the API."""

    model_config = ENV

    scan_token: SecretStr | None = Field(None, description="Per-scan system token (server and workers).")
    scan_token_file: Path | None = Field(None, description="File holding the per-scan system token.")

    def read_scan_token(self) -> str | None:
        if self.scan_token is not None:
            return self.scan_token.get_secret_value()
        if self.scan_token_file is not None:
            return self.scan_token_file.read_text().strip()
        return None


class RecoSettings(BaseSettings):
    """Which recos this process runs (the API accepts, a worker fits): operator configuration."""

    model_config = ENV

    enabled_recos: list[str] = Field(
        default_factory=list,
        description="Recos scans may use, JSON list; empty: every reco that is not test-only.",
    )
    test_recos: bool = Field(
        False,
        description="Also enable the test-only recos (dummy, crash-dummy): CI and load tests only.",
    )

    @field_validator("enabled_recos")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        enabled_recos(names)  # an unknown name fails at start-up, naming the known ones
        return names

    def recos(self) -> frozenset[str]:
        return enabled_recos(self.enabled_recos, self.test_recos)

    def reco_enabled(self, name: str) -> bool:
        return name in self.recos()
