"""Property-based tests of every parser that reads untrusted input: whatever arrives, each one
returns a value or raises its own refusal (which the API answers as a 4xx), never anything else
(which would be a 500). Round trips hold where a parser has a writer."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from skydriver_api.models import CatalogRequest
from skydriver_api.services import search
from skydriver_api.services.alerts import parse_alert
from skydriver_api.services.catalogs import parse_catalog
from skydriver_api.services.errors import Invalid, ServiceError
from skydriver_api.settings import ApiSettings
from skyscan.physics.event import Event, EventFormatError, parse_event
from skyscan.refinement.contour import parse_nsides
from skyscan.refinement.progression import NsideStep, format_progression, parse_progression
from tests.conftest import make_event

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = b"k" * 32

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=30,
)
pulse_values = st.fixed_dictionaries(
    {k: st.floats() | st.integers() | st.text(max_size=3) for k in ("x", "y", "z", "time", "charge")},
    optional={"string": json_scalars, "om": json_scalars, "hlc": json_scalars, "extra": json_scalars},
)


def event_like() -> st.SearchStrategy[Any]:
    """Mostly-valid events with any field replaced, dropped or added."""
    base = make_event(n_pulses=3)
    fields = st.fixed_dictionaries(
        {},
        optional={
            "schema": st.sampled_from(["skydriver.event/1", "skydriver.event/2"]) | json_scalars,
            "run_id": st.integers() | json_scalars,
            "event_id": st.integers() | json_scalars,
            "mjd": st.floats() | json_scalars,
            "pulses": st.lists(pulse_values, max_size=4) | json_values,
            "truth": st.fixed_dictionaries({"zenith": st.floats(), "azimuth": st.floats()}) | json_values,
            "unexpected": json_values,
        },
    )
    drops = st.sets(st.sampled_from(sorted(base)), max_size=3)
    return st.builds(lambda f, d: {k: v for k, v in {**base, **f}.items() if k not in d}, fields, drops)


# -- events --------------------------------------------------------------------------------------------
@SETTINGS
@given(st.one_of(json_values, event_like()))
def test_parse_event_returns_an_event_or_refuses(data: Any) -> None:
    try:
        event = parse_event(data)
    except EventFormatError as err:
        assert str(err)
        return
    assert isinstance(event, Event)
    assert all(math.isfinite(p.x) and p.charge > 0 for p in event.pulses)
    assert parse_event(event.to_json_dict()) == event  # what is stored reads back the same


# -- nside progressions --------------------------------------------------------------------------------
nside_text = st.text(alphabet="0123456789:, -x", max_size=30) | st.text(max_size=30)


@SETTINGS
@given(nside_text, st.integers(min_value=1, max_value=1 << 12))
def test_nside_parsers_return_steps_or_refuse(text: str, max_nside: int) -> None:
    for parse in (parse_progression, parse_nsides):
        try:
            steps = parse(text, max_nside)
        except ValueError as err:
            assert str(err)
            continue
        nsides = [s.nside if isinstance(s, NsideStep) else s for s in steps]
        assert nsides == sorted(set(nsides)) and all(0 < n <= max_nside and n & (n - 1) == 0 for n in nsides)


@SETTINGS
@given(st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=5, unique=True), st.data())
def test_valid_progressions_round_trip(exponents: list[int], data: st.DataObject) -> None:
    nsides = [1 << e for e in sorted(exponents)]
    steps = [NsideStep(nsides[0], 0)] + [
        NsideStep(n, data.draw(st.integers(min_value=1, max_value=10_000))) for n in nsides[1:]
    ]
    assert parse_progression(format_progression(steps)) == steps


# -- list cursors --------------------------------------------------------------------------------------
@SETTINGS
@given(st.text(max_size=300), st.sampled_from(sorted(search.SORTS)))
def test_any_text_is_refused_as_a_cursor(text: str, sort: str) -> None:
    with pytest.raises(Invalid, match="not a cursor this API returned"):
        search.decode_cursor(text, sort, KEY)


@SETTINGS
@given(
    st.datetimes(timezones=st.just(dt.UTC), min_value=dt.datetime(2000, 1, 1)),
    st.text(alphabet="0123456789abcdef", min_size=1, max_size=32),
    st.integers(min_value=-100, max_value=100),
    st.sampled_from(sorted(search.SORTS)),
    st.data(),
)
def test_cursors_round_trip_and_any_change_is_refused(
    created: dt.datetime, scan_id: str, priority: int, sort: str, data: st.DataObject
) -> None:
    created = created.replace(microsecond=created.microsecond // 1000 * 1000)
    doc = {"created_at": created, "_id": scan_id, "priority": priority}
    cursor = search.encode_cursor(doc, sort, KEY)
    values = search.decode_cursor(cursor, sort, KEY)
    assert values == [doc[f] for f, _ in search.SORTS[sort]]
    i = data.draw(st.integers(min_value=0, max_value=len(cursor) - 1))
    changed = cursor[:i] + data.draw(st.sampled_from("A_-.0=")) + cursor[i + 1 :]
    assume(changed != cursor)
    with pytest.raises(Invalid):
        search.decode_cursor(changed, sort, KEY)
    with pytest.raises(Invalid):
        search.decode_cursor(cursor, sort, b"another key" * 3)
    query = search.build_query(search.ScanFilters(), sort, cursor, KEY)
    assert "$gt" not in json.dumps([v for v in values if not isinstance(v, dt.datetime)])
    assert query["$and"][0]["$or"]  # the keyset condition, built from checked values only


# -- alert documents -----------------------------------------------------------------------------------
def alert_like() -> st.SearchStrategy[Any]:
    meta = st.fixed_dictionaries(
        {},
        optional={
            "run_id": st.integers() | json_scalars,
            "event_id": st.integers() | json_scalars,
            "revision": st.integers() | json_scalars,
            "stream": json_scalars,
            "extra-field": json_values,
            "$where": json_values,
        },
    )
    i3live = st.fixed_dictionaries({"value": json_values}, optional={"varname": json_values})
    return st.one_of(
        st.fixed_dictionaries({"event": st.one_of(event_like(), json_values), "alert": meta | json_values}),
        i3live,
        st.fixed_dictionaries({"i3live": i3live | json_values}, optional={"alert": meta | json_values}),
        st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    )


@SETTINGS
@given(alert_like())
def test_parse_alert_returns_an_alert_or_refuses(body: dict[str, Any]) -> None:
    try:
        event, meta, source = asyncio.run(parse_alert(body, ApiSettings()))
    except ServiceError as err:
        assert 400 <= err.status_code < 500 and err.detail
        return
    assert isinstance(event, Event) and source in ("open", "i3live")
    assert (meta.run_id, meta.event_id) == (event.run_id, event.event_id)


# -- catalogs: JSON Lines and JSON -----------------------------------------------------------------
line = st.one_of(
    st.builds(json.dumps, event_like()),
    st.builds(json.dumps, json_values),
    st.text(max_size=40),
    st.just(""),
)


@SETTINGS
@given(
    st.one_of(
        st.lists(line, max_size=5).map(lambda lines: "\n".join(lines).encode()),
        st.binary(max_size=200),
    ),
    st.sampled_from(["application/x-ndjson", "application/json", "text/plain"]),
)
@example(b"\x80", "application/x-ndjson")  # not UTF-8 (found by this test: it was a 500)
@example(b"[" * 100_000, "application/x-ndjson")  # nested beyond the JSON decoder's recursion
@example(b"[" * 100_000, "application/json")
def test_catalog_bodies_parse_or_are_refused(raw: bytes, content_type: str) -> None:
    try:
        cat = parse_catalog(raw, content_type, {"reco": "dummy", "nsides": "8:0"})
    except ServiceError as err:
        assert 400 <= err.status_code < 500 and err.detail
        return
    assert isinstance(cat, CatalogRequest) and cat.events
