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
    broker_url_file: Path | None = Field(
        None,
        description="File holding this process's AMQP URL (a scan's own broker identity); "
        "overrides SKYDRIVER_RABBITMQ_URL. Launchers set it for scan servers and workers.",
    )

    def broker_url(self) -> str:
        if self.broker_url_file is not None:
            return self.broker_url_file.read_text().strip()
        return self.rabbitmq_url.get_secret_value()


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


class ScanKeySettings(BaseSettings):
    """The scan's message signing key (hex), which its server and workers receive from the launcher."""

    model_config = ENV

    scan_key_file: Path | None = Field(None, description="File holding the scan's signing key (hex).")

    def read_scan_key(self) -> bytes:
        if self.scan_key_file is None:
            raise ValueError(
                "no scan key: SKYDRIVER_SCAN_KEY_FILE is unset (scan servers and workers are started "
                "by the API's launcher, which hands each its scan's key)"
            )
        return bytes.fromhex(self.scan_key_file.read_text().strip())


class KafkaSettings(BaseSettings):
    """Kafka: where alerts come from, where notices and rejected messages go, and how to log in.

    A topic setting is a name on ``kafka_bootstrap``'s brokers or a hop-client style URL
    ``kafka://[user@]host:port[,host:port]/topic[,topic]`` naming its own brokers, so alerts can come
    from GCN while notices go to Hopskotch. Credentials: the ``kafka_sasl_*``/``kafka_oidc_*`` fields,
    overridden per broker host by the entries of ``kafka_credentials_file`` (hop-client's auth.toml).
    """

    model_config = ENV

    kafka_bootstrap: str = Field(
        "", description="Brokers (host:port,... or kafka://host:port) for topics given by name; empty: off."
    )
    kafka_alert_topics: str = Field(
        "", description="Alert topics the listener consumes: comma-separated names or a kafka:// URL."
    )
    kafka_group_id: str = Field("skydriver-alerts", min_length=1, description="Consumer group of listeners.")
    kafka_notice_topic: str = Field(
        "", description="Topic (name or kafka:// URL) for the notice of each ended alert scan; empty: off."
    )
    kafka_dead_letter_topic: str = Field(
        "", description="Topic (name or kafka:// URL) for malformed alert messages; empty: recorded only."
    )
    kafka_security_protocol: str = Field(
        "", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; empty: SASL_SSL with credentials."
    )
    kafka_sasl_mechanism: str = Field(
        "SCRAM-SHA-512", description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (OIDC)."
    )
    kafka_sasl_username: str = Field("", description="SASL user name (Hopskotch: the credential's name).")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_oidc_client_id: str = Field("", description="OAUTHBEARER/OIDC client id (GCN Kafka).")
    kafka_oidc_client_secret: SecretStr | None = Field(None, description="OAUTHBEARER/OIDC client secret.")
    kafka_oidc_token_endpoint: str = Field("", description="OIDC token endpoint URL.")
    kafka_oidc_scope: str = Field("", description="OIDC scope, if the issuer needs one.")
    kafka_ssl_ca_location: Path | None = Field(None, description="CA bundle for SSL (default: the system's).")
    kafka_credentials_file: Path | None = Field(
        None, description="hop-client auth.toml: credentials per broker host, overriding the fields above."
    )
    kafka_session_timeout_s: float = Field(
        10.0, ge=1, le=300, description="Consumer session: a dead listener's partitions move after this."
    )
    kafka_notice_timeout_s: float = Field(
        30.0, gt=0, description="How long one notice publish may wait for the broker before it is retried."
    )


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
