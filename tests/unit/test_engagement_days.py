"""The days of an engagement record: the window's dates, and which stored days are read.

A stored day must be strict JSON ``{"engagement": number, "sources": {source: number}}``;
anything else is shown as a day with no activity (and logged), never passed through.
"""

from __future__ import annotations

from datetime import date

import pytest

from api.engagement import shape_record

AS_OF = "2026-03-01"  # the window crosses the end of February


def indicator(window_days: int = 7) -> dict[bytes, bytes]:
    fields = {
        "indicator": "good",
        "label": "Good",
        "score": "10.0",
        "reference_score": "9.0",
        "as_of": AS_OF,
        "window_days": str(window_days),
        "policy_version": "test",
        "course": "C",
        "year": "1",
        "updated_at": "2026-03-02T02:00:05+00:00",
    }
    return {k.encode(): v.encode() for k, v in fields.items()}


def record(days: dict[str, bytes], window_days: int = 7) -> dict:
    stored = {day.encode(): raw for day, raw in days.items()}
    return shape_record("S1", indicator(window_days), stored, date(2026, 3, 1))


def test_the_window_oldest_first_then_today_so_far() -> None:
    body = record(
        {
            "2026-02-23": b'{"engagement": 2.5, "sources": {"vle": 10, "library": 1.5}}',
            "2026-03-01": b'{"engagement": 4, "sources": {}}',
            "2026-03-02": b'{"engagement": 1.25, "sources": {"vle": 5}}',
            "2026-02-22": b'{"engagement": 9, "sources": {}}',  # before the window
        }
    )
    assert [d["date"] for d in body["days"]] == [
        "2026-02-23",
        "2026-02-24",
        "2026-02-25",
        "2026-02-26",
        "2026-02-27",
        "2026-02-28",
        "2026-03-01",
    ]
    assert body["days"][0] == {
        "date": "2026-02-23",
        "engagement": 2.5,
        "sources": {"vle": 10, "library": 1.5},
    }
    assert body["days"][1] == {"date": "2026-02-24", "engagement": 0.0, "sources": {}}
    assert body["days"][6]["engagement"] == 4.0
    assert isinstance(body["days"][6]["engagement"], float)
    assert body["today_so_far"] == {
        "date": "2026-03-02",
        "engagement": 1.25,
        "sources": {"vle": 5},
    }
    assert body["as_of"] == AS_OF
    assert len(record({}, window_days=21)["days"]) == 21


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"engagement": NaN, "sources": {}}',
        b'{"engagement": Infinity, "sources": {}}',
        b'{"engagement": 1e999, "sources": {}}',
        b'{"engagement": true, "sources": {}}',
        b'{"engagement": "3", "sources": {}}',
        b'{"engagement": null, "sources": {}}',
        b'{"sources": {}}',
        b'{"engagement": 3}',
        b'{"engagement": 3, "sources": []}',
        b'{"engagement": 3, "sources": {"vle": "9"}}',
        b'{"engagement": 3, "sources": {"vle": false}}',
        b'{"engagement": 3, "sources": {"vle": null}}',
        b"[3, {}]",
        b'"text"',
        b"3",
        b"null",
        b"\xff\xfe",
        b"[" * 2000 + b"]" * 2000,
    ],
)
def test_an_unreadable_day_is_a_day_without_activity(
    raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    body = record({"2026-02-27": raw, "2026-03-02": raw})
    assert body["days"][4] == {"date": "2026-02-27", "engagement": 0.0, "sources": {}}
    assert body["today_so_far"] is None
    assert sum("corrupt day" in r.getMessage() for r in caplog.records) == 2
