"""Stored values parsed once and remembered by their bytes give the records that parsing
them afresh gives; a value that changes is read anew, and a corrupt one is refused (and
logged) on every read, never remembered."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import engagement
from api.engagement import CorruptIndicatorError, shape_record

AS_OF = date(2026, 10, 12)
CLOSABLE = date(2026, 10, 11)


def indicator(score: str = "10.0", window_days: int = 7) -> dict[bytes, bytes]:
    fields = {
        "indicator": "good",
        "label": "Good",
        "score": score,
        "reference_score": "9.0",
        "as_of": AS_OF.isoformat(),
        "window_days": str(window_days),
        "policy_version": "test",
        "course": "C",
        "year": "1",
        "updated_at": "2026-10-13T02:00:05+00:00",
    }
    return {k.encode(): v.encode() for k, v in fields.items()}


def day(engagement: float, **sources: float) -> bytes:
    return orjson.dumps({"engagement": engagement, "sources": sources})


def stored(values: dict[int, bytes]) -> dict[bytes, bytes]:
    """Days hash: days before ``AS_OF`` (-1 is today so far) to their stored value."""
    return {(AS_OF - timedelta(days=n)).isoformat().encode(): raw for n, raw in values.items()}


def fresh(indicator: dict[bytes, bytes], days: dict[bytes, bytes]) -> dict[str, Any]:
    """The record with nothing remembered."""
    engagement._remembered_indicator.cache_clear()
    engagement._day_value.cache_clear()
    engagement._window_dates.cache_clear()
    return shape_record("S1", indicator, days, CLOSABLE)


VALUES = st.one_of(
    st.builds(day, st.floats(0, 100), moodle=st.floats(0, 10)),
    st.sampled_from([b"{", b"[]", b'{"engagement": "x", "sources": {}}', b"\xff"]),
)


@settings(max_examples=100)
@given(
    st.dictionaries(st.integers(-1, 8), VALUES, max_size=10),
    st.integers(1, 10),
    st.sampled_from(["10.0", "11.5", "nan"]),
)
def test_remembered_values_give_the_record_parsing_afresh_gives(
    values: dict[int, bytes], window_days: int, score: str
) -> None:
    raw_indicator, days = indicator(score, window_days), stored(values)
    try:
        expected = fresh(raw_indicator, days)
    except CorruptIndicatorError:
        for _ in range(2):  # refused again: a corrupt indicator is never remembered
            with pytest.raises(CorruptIndicatorError):
                shape_record("S1", raw_indicator, days, CLOSABLE)
        return
    for _ in range(2):
        again = shape_record("S1", dict(raw_indicator), dict(days), CLOSABLE)
        assert orjson.dumps(again) == orjson.dumps(expected)


def test_a_changed_value_is_read_anew() -> None:
    first = shape_record("S1", indicator("10.0"), stored({-1: day(1.0, moodle=1.0)}), CLOSABLE)
    then = shape_record("S1", indicator("12.5"), stored({-1: day(2.0, moodle=3.0)}), CLOSABLE)
    assert (first["score"], first["today_so_far"]["engagement"]) == (10.0, 1.0)
    assert (then["score"], then["today_so_far"]) == (
        12.5,
        {"date": "2026-10-13", "engagement": 2.0, "sources": {"moodle": 3.0}},
    )


def test_a_corrupt_day_is_logged_on_every_read(caplog: pytest.LogCaptureFixture) -> None:
    days = stored({2: b'{"engagement": 1}'})
    with caplog.at_level(logging.WARNING, logger="api.engagement"):
        for _ in range(3):
            body = shape_record("S1", indicator(), days, CLOSABLE)
            assert body["days"][4] == {"date": "2026-10-10", "engagement": 0.0, "sources": {}}
    assert sum("Skipping corrupt day 2026-10-10" in r.message for r in caplog.records) == 3
