"""Settings the processes share: how to reach the broker and the database, and the scan token.

Each process kind has its own settings class built from these parts: ``skydriver_api.settings.
ApiSettings`` (the API and its reconciler), ``server.settings.ServerSettings`` and
``worker.settings.WorkerSettings``. Every field can be set from the environment with the
``SKYDRIVER_`` prefix, e.g. ``SKYDRIVER_RABBITMQ_URL``. Secrets are ``SecretStr`` so they never end up
in reprs or logs.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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
