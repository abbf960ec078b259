"""Kafka clients for alert streams: topic URLs, credentials, and one publisher with delivery reports.

Built on confluent-kafka (librdkafka), like GCN's ``gcn-kafka`` and SCiMMA's ``hop-client``.

* Topic settings are names on ``SKYDRIVER_KAFKA_BOOTSTRAP`` or hop-client URLs,
  ``kafka://[user@]host[:port][,host[:port]]/topic[,topic]`` (port 9092 when omitted).
* Credentials come from the ``SKYDRIVER_KAFKA_SASL_*`` / ``_OIDC_*`` settings, or per broker host from
  a hop-client ``auth.toml`` (``SKYDRIVER_KAFKA_CREDENTIALS_FILE``): SCRAM for Hopskotch,
  OAUTHBEARER with OIDC client credentials for GCN Kafka. Client configurations hold secrets: log
  them only through :func:`redacted`.
* :class:`Publisher` produces without blocking and hands back delivery reports (partition and
  offset, or the error) when asked, so an asyncio loop never waits on the broker; ``publish_and_wait``
  is the blocking form.
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from skyinfra.settings import KafkaSettings

DEFAULT_PORT = 9092
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
_SECRET_KEYS = ("password", "secret")
# librdkafka's own log lines (connection refused, ...) go through logging, never raw to stderr
CLIENT_LOG = logging.getLogger("skydriver.kafka")

__all__ = [
    "Consumer",
    "Delivery",
    "KafkaConfigError",
    "KafkaError",
    "KafkaException",
    "KafkaTarget",
    "Message",
    "Publisher",
    "client_config",
    "consumer_config",
    "make_consumer",
    "redacted",
    "resolve_target",
]


class KafkaConfigError(ValueError):
    """A Kafka setting that cannot work; the message names the setting."""


@dataclass(frozen=True)
class KafkaTarget:
    """Brokers (``host:port,...``) and the topics on them."""

    brokers: str
    topics: tuple[str, ...]
    username: str = ""

    @property
    def host(self) -> str:
        return self.brokers.split(",")[0].rsplit(":", 1)[0]

    @property
    def topic(self) -> str:
        if len(self.topics) != 1:
            raise KafkaConfigError(f"expected one topic, got {len(self.topics)}: {', '.join(self.topics)}")
        return self.topics[0]


def _brokers(text: str, what: str) -> str:
    hosts = []
    for item in (h.strip() for h in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        if not sep:
            host, port = item, str(DEFAULT_PORT)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise KafkaConfigError(f"{what}: {item!r} is not host:port")
        hosts.append(f"{host}:{port}")
    if not hosts:
        raise KafkaConfigError(f"{what}: no broker given")
    return ",".join(hosts)


def parse_kafka_url(url: str, what: str = "Kafka URL") -> KafkaTarget:
    """``kafka://[user@]host[:port][,host[:port]][/topic[,topic]]``, as hop-client writes them."""
    if not url.startswith("kafka://"):
        raise KafkaConfigError(f"{what}: {url!r} does not start with kafka://")
    rest = url[len("kafka://") :]
    netloc, _, path = rest.partition("/")
    user, _, hosts = netloc.rpartition("@")
    topics = tuple(t for t in (p.strip() for p in path.split(",")) if t)
    return KafkaTarget(_brokers(hosts, what), topics, unquote(user))


def resolve_target(value: str, default_brokers: str, what: str) -> KafkaTarget:
    """A topic setting (names, or a kafka:// URL with its own brokers) as brokers and topics."""
    value = value.strip()
    if value.startswith("kafka://"):
        target = parse_kafka_url(value, what)
        if not target.topics:
            raise KafkaConfigError(f"{what}: the URL names no topic")
        return target
    topics = tuple(t for t in (p.strip() for p in value.split(",")) if t)
    if not topics:
        raise KafkaConfigError(f"{what}: no topic given")
    if not default_brokers.strip():
        raise KafkaConfigError(f"{what}: set SKYDRIVER_KAFKA_BOOTSTRAP or give a kafka://host:port/topic URL")
    if default_brokers.strip().startswith("kafka://"):
        base = parse_kafka_url(default_brokers.strip(), "SKYDRIVER_KAFKA_BOOTSTRAP")
        return KafkaTarget(base.brokers, topics, base.username)
    return KafkaTarget(_brokers(default_brokers, "SKYDRIVER_KAFKA_BOOTSTRAP"), topics)


# -- credentials ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Credential:
    """How to log in to one cluster. For OAUTHBEARER, ``username``/``password`` are the OIDC client id
    and secret (hop-client's convention)."""

    hostname: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    protocol: str = ""
    mechanism: str = "SCRAM-SHA-512"
    ssl_ca_file: str = ""
    token_endpoint: str = ""
    scope: str = ""


def _mechanism(value: str, what: str) -> str:
    name = value.strip().upper().replace("_", "-")
    if name not in MECHANISMS:
        raise KafkaConfigError(f"{what}: unknown SASL mechanism {value!r}; one of {', '.join(MECHANISMS)}")
    return name


def load_credentials_file(path: Path) -> list[Credential]:
    """hop-client's auth.toml: ``[[auth]]`` tables with username, password, hostname, protocol,
    mechanism, ssl_ca_file (and token_endpoint, scope for OIDC)."""
    what = f"SKYDRIVER_KAFKA_CREDENTIALS_FILE ({path})"
    try:
        doc = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise KafkaConfigError(f"{what}: {type(err).__name__}: {err}") from None
    entries = doc.get("auth", [])
    if isinstance(entries, dict):
        entries = [entries]
    known = set(Credential.__dataclass_fields__)
    out = []
    for i, entry in enumerate(entries):
        unknown = set(entry) - known
        if unknown:
            raise KafkaConfigError(f"{what}: auth entry {i}: unknown keys {', '.join(sorted(unknown))}")
        cred = Credential(**{k: str(v) for k, v in entry.items()})
        out.append(Credential(**{**cred.__dict__, "mechanism": _mechanism(cred.mechanism, what)}))
    return out


def _credential(settings: KafkaSettings, host: str) -> Credential:
    if settings.kafka_credentials_file is not None:
        for cred in load_credentials_file(settings.kafka_credentials_file):
            if cred.hostname in ("", host):
                return cred
    mechanism = _mechanism(settings.kafka_sasl_mechanism, "SKYDRIVER_KAFKA_SASL_MECHANISM")
    if mechanism == "OAUTHBEARER":
        secret = settings.kafka_oidc_client_secret
        return Credential(
            username=settings.kafka_oidc_client_id,
            password=secret.get_secret_value() if secret else "",
            protocol=settings.kafka_security_protocol,
            mechanism=mechanism,
            ssl_ca_file=str(settings.kafka_ssl_ca_location or ""),
            token_endpoint=settings.kafka_oidc_token_endpoint,
            scope=settings.kafka_oidc_scope,
        )
    password = settings.kafka_sasl_password
    return Credential(
        username=settings.kafka_sasl_username,
        password=password.get_secret_value() if password else "",
        protocol=settings.kafka_security_protocol,
        mechanism=mechanism,
        ssl_ca_file=str(settings.kafka_ssl_ca_location or ""),
    )


def client_config(settings: KafkaSettings, target: KafkaTarget) -> dict[str, Any]:
    """librdkafka settings for the target's cluster, with its credentials. Holds secrets."""
    cred = _credential(settings, target.host)
    config: dict[str, Any] = {"bootstrap.servers": target.brokers, "client.id": "skydriver"}
    if cred.mechanism == "OAUTHBEARER" and (cred.username or cred.token_endpoint):
        if not (cred.username and cred.password and cred.token_endpoint):
            raise KafkaConfigError(
                f"OAUTHBEARER for {target.host}: needs a client id, a client secret and a token endpoint"
            )
        config.update(
            {
                "sasl.mechanism": "OAUTHBEARER",
                "sasl.oauthbearer.method": "oidc",
                "sasl.oauthbearer.client.id": cred.username,
                "sasl.oauthbearer.client.secret": cred.password,
                "sasl.oauthbearer.token.endpoint.url": cred.token_endpoint,
            }
        )
        if cred.scope:
            config["sasl.oauthbearer.scope"] = cred.scope
    elif cred.username or target.username:
        if not cred.password:
            raise KafkaConfigError(f"SASL user for {target.host} has no password")
        config.update(
            {
                "sasl.mechanism": cred.mechanism,
                "sasl.username": cred.username or target.username,
                "sasl.password": cred.password,
            }
        )
    sasl = "sasl.mechanism" in config
    protocol = (cred.protocol or ("SASL_SSL" if sasl else "PLAINTEXT")).upper()
    if protocol not in PROTOCOLS:
        raise KafkaConfigError(f"security protocol {cred.protocol!r}: one of {', '.join(PROTOCOLS)}")
    if sasl and not protocol.startswith("SASL"):
        raise KafkaConfigError(
            f"credentials for {target.host} need a SASL_* security protocol, not {protocol}",
        )
    config["security.protocol"] = protocol
    if cred.ssl_ca_file:
        config["ssl.ca.location"] = cred.ssl_ca_file
    return config


def redacted(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration with every secret masked: the only form of it that may be logged."""
    return {k: ("***" if any(s in k for s in _SECRET_KEYS) else v) for k, v in config.items()}


def make_consumer(config: dict[str, Any]) -> Consumer:
    return Consumer(config, logger=CLIENT_LOG)


def consumer_config(settings: KafkaSettings, target: KafkaTarget) -> dict[str, Any]:
    """A group member that commits its offsets itself (after the alert is stored), from the start of
    a topic it has no offsets for."""
    return {
        **client_config(settings, target),
        "group.id": settings.kafka_group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": int(settings.kafka_session_timeout_s * 1000),
        "heartbeat.interval.ms": max(500, int(settings.kafka_session_timeout_s * 1000 / 5)),
    }


# -- publishing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delivery:
    """What the broker said about one produced message; ``token`` is the caller's label for it."""

    token: str
    topic: str
    partition: int | None
    offset: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


class Publisher:
    """One producer (acks from all in-sync replicas, idempotent) and the delivery reports it got.

    ``produce`` never blocks on the broker; ``deliveries()`` serves the callbacks and returns the
    reports since the last call. A message the broker does not acknowledge within ``timeout_s``
    comes back with an error: the caller decides when to try again.
    """

    def __init__(self, config: dict[str, Any], timeout_s: float = 30.0, **extra: Any) -> None:
        self.timeout_s = timeout_s
        self._producer = Producer(
            {
                **config,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": int(timeout_s * 1000),
                **extra,
            },
            logger=CLIENT_LOG,
        )
        self._lock = threading.Lock()
        self._reports: list[Delivery] = []
        self.in_flight: set[str] = set()

    def produce(
        self,
        token: str,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: dict[str, str | bytes] | None = None,
    ) -> None:
        def report(err: KafkaError | None, msg: Message) -> None:
            with self._lock:
                self._reports.append(
                    Delivery(
                        token,
                        msg.topic() or topic,
                        None if err else msg.partition(),
                        None if err else msg.offset(),
                        None if err is None else f"{err.name()}: {err.str()}",
                    )
                )

        self.in_flight.add(token)
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, headers=headers or None, on_delivery=report
                )
                return
            except BufferError:  # the local queue is full: serve callbacks to make room
                self._producer.poll(0.1)
            except KafkaException as exc:  # refused before sending (too large, unknown topic ...)
                err = exc.args[0]
                with self._lock:
                    self._reports.append(Delivery(token, topic, None, None, f"{err.name()}: {err.str()}"))
                return

    def deliveries(self, wait_s: float = 0.0) -> list[Delivery]:
        self._producer.poll(wait_s)
        with self._lock:
            reports, self._reports = self._reports, []
        for r in reports:
            self.in_flight.discard(r.token)
        return reports

    def publish_and_wait(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: dict[str, str | bytes] | None = None,
    ) -> Delivery:
        """Produce one message and wait for its report (at most the timeout and a little)."""
        token = f"wait-{time.monotonic_ns()}"
        self.produce(token, topic, value, key, headers)
        deadline = time.monotonic() + self.timeout_s + 5
        pending: list[Delivery] = []
        while time.monotonic() < deadline:
            for report in self.deliveries(0.1):
                if report.token == token:
                    with self._lock:
                        self._reports[:0] = pending
                    return report
                pending.append(report)
        with self._lock:
            self._reports[:0] = pending
        return Delivery(token, topic, None, None, "no delivery report within the timeout")

    def flush(self, timeout_s: float) -> int:
        """Wait for every queued message; the number still undelivered."""
        return self._producer.flush(timeout_s)
