from __future__ import annotations

import json

import pytest

from skyscan.physics.event import EventFormatError, event_json_schema, parse_event
from tests.conftest import make_event


def test_valid_event_round_trips() -> None:
    data = make_event()
    event = parse_event(data)
    assert event.run_id == 1 and len(event.pulses) == 20
    assert parse_event(event.to_json_dict()) == event
    cols = event.pulse_arrays
    assert cols["time"][3] == 1030.0 and cols["charge"].sum() == pytest.approx(
        sum(1.0 + i % 3 for i in range(20))
    )


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(schema="skydriver.event/2"), "schema"),
        (lambda d: d.pop("run_id"), "run_id"),
        (lambda d: d["pulses"][3].update(time="soon"), "pulses.3.time"),
        (lambda d: d["pulses"][1].update(charge=-1.0), "pulses.1.charge"),
        (lambda d: d["pulses"][0].update(colour="red"), "pulses.0.colour"),
        (lambda d: d.update(pulses=[]), "pulses"),
        (lambda d: d.update(truth={"zenith": 4.0, "azimuth": 0.0}), "truth.zenith"),
        (lambda d: d.update(mjd=float("nan")), "mjd"),
    ],
)
def test_invalid_events_name_the_field(mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    data = make_event()
    mutate(data)
    with pytest.raises(EventFormatError) as err:
        parse_event(data)
    assert field in str(err.value)


def test_non_object_is_rejected() -> None:
    with pytest.raises(EventFormatError, match="JSON object"):
        parse_event([1, 2])


def test_published_json_schema_matches_the_model() -> None:
    from pathlib import Path

    published = json.loads((Path(__file__).parents[2] / "docs" / "event-schema-v1.json").read_text())
    assert published == json.loads(json.dumps(event_json_schema()))
    assert "pulses" in published["required"]
