"""What a simulated alert stream is: the YAML file ``skydriver alertsim run`` reads.

.. code-block:: yaml

    seed: 7
    target: kafka                 # kafka (topic below) or rest (POST /api/v1/alerts)
    topic: skydriver.alerts       # a name on SKYDRIVER_KAFKA_BOOTSTRAP, or kafka://host:port/topic
    rate_per_s: 1.0               # steady messages ...
    duration_s: 40                # ... for this long
    bursts:                       # plus N messages within one second at a time
      - {at_s: 10, messages: 8}
    energy_gev: [1.0e4, 1.0e6]    # simulated tracks, log-uniform energies
    revisions: 0.25               # share of events that get an update (revision 1) later
    duplicates: 0.2               # share of messages that repeat an earlier valid one byte for byte
    corrupt: 0.1                  # share of messages that are corrupt, cycling through corrupt_kinds
    corrupt_kinds: [truncated, wrong_schema, flipped_bytes, oversize]
    oversize_bytes: 1100000       # size of an oversize message (above the service's limit)
    disruptions:
      - {at_s: 12, kind: restart_consumer}           # SIGKILL the listener, start it again
      - {at_s: 25, kind: drop_broker_connections, seconds: 3}
    listener:                     # the consumer alertsim runs (needed for restart_consumer)
      command: [skydriver, alerts, listen]
      log: alertsim-listener.log

Shares are of all messages and exact (rounded), so a stream always has the same mix for a seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

CORRUPT_KINDS = ("truncated", "wrong_schema", "flipped_bytes", "oversize")


class AlertSimError(Exception):
    """The stream cannot be run or checked as described; the message says why."""


class Burst(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at_s: float = Field(ge=0)
    messages: int = Field(ge=1, le=10000)


class Disruption(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at_s: float = Field(ge=0)
    kind: Literal["restart_consumer", "drop_broker_connections"]
    seconds: float = Field(0.0, ge=0, le=600, description="restart: down this long; drop: keep dropping")


class ListenerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: list[str] = Field(min_length=1)
    log: Path = Path("alertsim-listener.log")


class StreamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    target: Literal["kafka", "rest"] = "kafka"
    topic: str = Field("", description="kafka: topic name or kafka:// URL")
    api_url: str = Field("", description="rest: the API (default SKYDRIVER_API_URL); token: SKYDRIVER_TOKEN")
    notice_topic: str = Field("", description="for the check (default SKYDRIVER_KAFKA_NOTICE_TOPIC)")
    stream: str = Field("alertsim", max_length=100, description="the alerts' stream name")
    rate_per_s: float = Field(1.0, gt=0, le=10000)
    duration_s: float = Field(10.0, ge=0, le=86400)
    bursts: list[Burst] = Field(default_factory=list)
    energy_gev: tuple[float, float] = (1e4, 1e6)
    revisions: float = Field(0.0, ge=0, le=1)
    duplicates: float = Field(0.0, ge=0, lt=1)
    corrupt: float = Field(0.0, ge=0, lt=1)
    corrupt_kinds: list[Literal["truncated", "wrong_schema", "flipped_bytes", "oversize"]] = Field(
        default_factory=lambda: list(CORRUPT_KINDS), min_length=1
    )
    oversize_bytes: int = Field(1_100_000, ge=2048, le=64 * 1024 * 1024)
    disruptions: list[Disruption] = Field(default_factory=list)
    listener: ListenerSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> StreamSpec:
        lo, hi = self.energy_gev
        if not 0 < lo <= hi:
            raise ValueError("energy_gev: [low, high] with 0 < low <= high")
        if self.duplicates + self.corrupt >= 1:
            raise ValueError("duplicates + corrupt must leave room for new alerts (sum below 1)")
        if self.target == "kafka" and not self.topic:
            raise ValueError("topic: required for target kafka")
        kinds = {d.kind for d in self.disruptions}
        if self.target == "rest" and kinds:
            raise ValueError("disruptions act on the Kafka consumer and broker: target kafka only")
        if "restart_consumer" in kinds and self.listener is None:
            raise ValueError("restart_consumer needs listener.command (the consumer alertsim runs)")
        return self


def load_stream(path: Path) -> StreamSpec:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise AlertSimError(f"{path}: {err}") from None
    if not isinstance(doc, dict):
        raise AlertSimError(f"{path}: expected a YAML mapping")
    try:
        return StreamSpec.model_validate(doc)
    except ValidationError as err:
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'stream'}: {e['msg']}" for e in err.errors())
        raise AlertSimError(f"{path}: {detail}") from None
