"""Alert streams without a broker: topic URLs, credentials (never logged), message decoding, and the
alert-stream simulator's plan (exact mix, deterministic, corrupt kinds each rejected for their
reason)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from skydriver_api.alertsim.plan import EXPECTED_REASONS, plan
from skydriver_api.alertsim.spec import AlertSimError, StreamSpec, load_stream
from skydriver_api.settings import ApiSettings
from skydriver_api.streams.listener import DEAD_LETTER_MAX_BYTES, Malformed, decode
from skyinfra.kafka import KafkaConfigError, client_config, parse_kafka_url, redacted, resolve_target
from skyinfra.settings import KafkaSettings


# -- URLs --------------------------------------------------------------------------------------------
def test_kafka_urls_as_hop_client_writes_them() -> None:
    target = parse_kafka_url("kafka://user@kafka.scimma.org,b2.example.org:9093/gcn.notices,other")
    assert target.brokers == "kafka.scimma.org:9092,b2.example.org:9093"
    assert target.topics == ("gcn.notices", "other") and target.username == "user"
    assert target.host == "kafka.scimma.org"
    with pytest.raises(KafkaConfigError, match="one topic"):
        _ = target.topic


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("kafka://host:99999/t", "not host:port"),
        ("kafka:///t", "no broker"),
        ("kafka://host:9092", "names no topic"),
    ],
)
def test_bad_kafka_urls_are_refused_with_the_reason(value: str, message: str) -> None:
    with pytest.raises(KafkaConfigError, match=message):
        resolve_target(value, "", "SKYDRIVER_KAFKA_ALERT_TOPICS")


def test_only_kafka_urls_parse_as_urls() -> None:
    with pytest.raises(KafkaConfigError, match="does not start with kafka://"):
        parse_kafka_url("http://host/t")


def test_topic_names_use_the_bootstrap_brokers() -> None:
    assert resolve_target("a, b", "h1:1,h2", "x").brokers == "h1:1,h2:9092"
    assert resolve_target("a", "kafka://h3:7", "x").topics == ("a",)
    with pytest.raises(KafkaConfigError, match="SKYDRIVER_KAFKA_BOOTSTRAP"):
        resolve_target("alerts", "", "SKYDRIVER_KAFKA_ALERT_TOPICS")


# -- credentials -------------------------------------------------------------------------------------
def test_scram_credentials_become_sasl_ssl_and_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYDRIVER_KAFKA_SASL_USERNAME", "skydriver-bot")
    monkeypatch.setenv("SKYDRIVER_KAFKA_SASL_PASSWORD", "hunter2-secret")
    settings = KafkaSettings()
    config = client_config(settings, resolve_target("kafka://kafka.scimma.org/t", "", "x"))
    assert config["security.protocol"] == "SASL_SSL"
    assert (config["sasl.mechanism"], config["sasl.username"]) == ("SCRAM-SHA-512", "skydriver-bot")
    assert config["sasl.password"] == "hunter2-secret"
    assert "hunter2" not in repr(settings) and "hunter2" not in repr(ApiSettings())
    assert "hunter2" not in json.dumps(redacted(config)) and redacted(config)["sasl.password"] == "***"


def test_gcn_oidc_client_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYDRIVER_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    monkeypatch.setenv("SKYDRIVER_KAFKA_OIDC_CLIENT_ID", "client-abc")
    monkeypatch.setenv("SKYDRIVER_KAFKA_OIDC_CLIENT_SECRET", "s3cret-value")
    monkeypatch.setenv("SKYDRIVER_KAFKA_OIDC_TOKEN_ENDPOINT", "https://auth.gcn.nasa.gov/oauth2/token")
    config = client_config(KafkaSettings(), resolve_target("kafka://kafka.gcn.nasa.gov/gcn.x", "", "x"))
    assert config["sasl.mechanism"] == "OAUTHBEARER" and config["sasl.oauthbearer.method"] == "oidc"
    assert config["sasl.oauthbearer.client.id"] == "client-abc"
    assert config["sasl.oauthbearer.token.endpoint.url"] == "https://auth.gcn.nasa.gov/oauth2/token"
    assert config["security.protocol"] == "SASL_SSL"
    assert "s3cret" not in json.dumps(redacted(config))
    monkeypatch.delenv("SKYDRIVER_KAFKA_OIDC_TOKEN_ENDPOINT")
    with pytest.raises(KafkaConfigError, match="token endpoint"):
        client_config(KafkaSettings(), resolve_target("kafka://kafka.gcn.nasa.gov/gcn.x", "", "x"))


def test_a_hop_credentials_file_picks_credentials_by_broker_host(tmp_path: Path) -> None:
    auth = tmp_path / "auth.toml"
    auth.write_text(
        '[[auth]]\nusername = "hop-user"\npassword = "hop-pass"\nhostname = "kafka.scimma.org"\n'
        'mechanism = "SCRAM_SHA_512"\nprotocol = "SASL_SSL"\n\n'
        '[[auth]]\nusername = "gcn-client"\npassword = "gcn-secret"\nhostname = "kafka.gcn.nasa.gov"\n'
        'mechanism = "OAUTHBEARER"\ntoken_endpoint = "https://auth.gcn.nasa.gov/oauth2/token"\n'
    )
    settings = KafkaSettings(kafka_credentials_file=auth)
    hop = client_config(settings, resolve_target("kafka://kafka.scimma.org/x", "", "x"))
    gcn = client_config(settings, resolve_target("kafka://kafka.gcn.nasa.gov/y", "", "x"))
    local = client_config(settings, resolve_target("z", "127.0.0.1:9092", "x"))
    assert (hop["sasl.mechanism"], hop["sasl.username"]) == ("SCRAM-SHA-512", "hop-user")
    assert gcn["sasl.oauthbearer.client.id"] == "gcn-client"
    assert local["security.protocol"] == "PLAINTEXT" and "sasl.mechanism" not in local
    auth.write_text('[[auth]]\nusername = "u"\npasword = "typo"\n')
    with pytest.raises(KafkaConfigError, match="unknown keys pasword"):
        client_config(settings, resolve_target("kafka://h/x", "", "x"))


def test_credentials_need_a_sasl_protocol() -> None:
    settings = KafkaSettings(kafka_sasl_username="u", kafka_sasl_password="p", kafka_security_protocol="SSL")
    with pytest.raises(KafkaConfigError, match="SASL_"):
        client_config(settings, resolve_target("t", "h:1", "x"))
    with pytest.raises(KafkaConfigError, match="unknown SASL mechanism"):
        client_config(KafkaSettings(kafka_sasl_mechanism="MD5"), resolve_target("t", "h:1", "x"))


# -- decoding ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty message"),
        (b"x" * 2000, "exceeds the limit of 1024"),
        (b'{"a": \xc3\x28}', "not UTF-8"),
        (b'{"event": {', "not JSON"),
        (b'"just a string"', "not a JSON object but a str"),
    ],
)
def test_malformed_messages_are_named(value: bytes, reason: str) -> None:
    with pytest.raises(Malformed, match=reason):
        decode(value, 1024)
    assert decode(b'{"event": {}}', 1024) == {"event": {}}


def test_dead_letters_fit_a_default_broker() -> None:
    assert DEAD_LETTER_MAX_BYTES < 1_000_000


# -- alertsim ------------------------------------------------------------------------------------------
SOAK_LIKE = {
    "seed": 11,
    "topic": "alerts",
    "rate_per_s": 1.0,
    "duration_s": 40,
    "bursts": [{"at_s": 5, "messages": 10}],
    "revisions": 0.25,
    "duplicates": 0.2,
    "corrupt": 0.1,
    "oversize_bytes": 200_000,
    "energy_gev": [1e4, 2e4],
}


def test_a_plan_has_the_exact_mix_in_a_valid_order_and_is_deterministic() -> None:
    spec = StreamSpec.model_validate(SOAK_LIKE)
    messages = plan(spec)
    kinds = [m.kind for m in messages]
    assert len(messages) == 50
    assert (kinds.count("corrupt"), kinds.count("duplicate"), kinds.count("update"), kinds.count("new")) == (
        5,
        10,
        7,
        28,
    )
    assert sum(1 for m in messages if 5 <= m.at_s < 6) >= 10  # the burst, within one second
    seen: dict[tuple, int] = {}
    for m in messages:
        if m.kind == "duplicate":
            assert m.duplicate_of is not None and m.duplicate_of < m.seq
            assert m.value == messages[m.duplicate_of].value
        elif m.kind == "update":
            run, event, revision = m.identity
            assert revision == 1 and (run, event, 0) in seen
        elif m.kind == "new":
            seen[m.identity] = m.seq
    assert len({m.key for m in messages if m.kind != "duplicate"}) == 40  # every message its own key
    again = [hashlib.sha256(m.value).hexdigest() for m in plan(spec)]
    assert again == [hashlib.sha256(m.value).hexdigest() for m in messages]
    other = plan(StreamSpec.model_validate({**SOAK_LIKE, "seed": 12}))
    assert [m.value for m in other] != [m.value for m in messages]


def test_every_corrupt_kind_is_refused_by_the_listener_for_its_reason() -> None:
    from skydriver_api.services.alerts import parse_alert
    from skydriver_api.services.errors import Invalid

    spec = StreamSpec.model_validate({**SOAK_LIKE, "corrupt": 0.16, "duplicates": 0.0})
    corrupt = [m for m in plan(spec) if m.kind == "corrupt"]
    assert {m.corrupt_kind for m in corrupt} == set(EXPECTED_REASONS)
    for m in corrupt:
        reason = EXPECTED_REASONS[m.corrupt_kind]
        if m.corrupt_kind == "wrong_schema":  # well-formed JSON: refused by the alert validation
            import asyncio

            with pytest.raises(Invalid, match="event.schema"):
                asyncio.run(parse_alert(decode(m.value, spec.oversize_bytes), ApiSettings()))
            continue
        assert len(m.value) < spec.oversize_bytes or m.corrupt_kind == "oversize"
        with pytest.raises(Malformed, match=reason):
            decode(m.value, spec.oversize_bytes - 1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"disruptions": [{"at_s": 1, "kind": "restart_consumer"}]}, "listener.command"),
        ({"target": "rest", "disruptions": [{"at_s": 1, "kind": "drop_broker_connections"}]}, "target kafka"),
        ({"duplicates": 0.6, "corrupt": 0.5}, "sum below 1"),
        ({"topic": ""}, "topic: required"),
        ({"corrupt_kinds": ["exploded"]}, "corrupt_kinds"),
        ({"rate": 3}, "rate"),
    ],
)
def test_bad_stream_descriptions_are_refused(tmp_path: Path, change: dict, message: str) -> None:
    path = tmp_path / "stream.yaml"
    import yaml

    path.write_text(yaml.safe_dump({**SOAK_LIKE, **change}))
    with pytest.raises(AlertSimError, match=message):
        load_stream(path)
    with pytest.raises(ValidationError):
        StreamSpec.model_validate({**SOAK_LIKE, **change})
