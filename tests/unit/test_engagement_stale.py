"""An engagement record older than the last day that should have closed says it is stale."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.engagement import newest_closable, shape_record

LONDON = ZoneInfo("Europe/London")
GRACE = timedelta(hours=2)


def indicator(as_of: str) -> dict[bytes, bytes]:
    fields = {
        "student_id": "S1",
        "indicator": "good",
        "label": "Good",
        "score": "10.0",
        "reference_score": "9.0",
        "as_of": as_of,
        "window_days": "7",
        "policy_version": "test",
        "course": "C",
        "year": "1",
        "updated_at": "2026-11-30T02:00:05+00:00",
    }
    return {k.encode(): v.encode() for k, v in fields.items()}


@pytest.mark.parametrize(
    ("now", "closable"),
    [
        # 1 December 01:59 in London (GMT): 30 November is still in its grace period
        (datetime(2026, 12, 1, 1, 59, tzinfo=UTC), date(2026, 11, 29)),
        (datetime(2026, 12, 1, 2, 0, 1, tzinfo=UTC), date(2026, 11, 30)),
        # summer time: local midnight is 23:00 UTC, so the grace ends at 01:00 UTC
        (datetime(2026, 7, 1, 0, 59, tzinfo=UTC), date(2026, 6, 29)),
        (datetime(2026, 7, 1, 1, 1, tzinfo=UTC), date(2026, 6, 30)),
    ],
)
def test_newest_closable_day(now: datetime, closable: date) -> None:
    assert newest_closable(now, LONDON, GRACE) == closable


@pytest.mark.parametrize(
    ("as_of", "stale"), [("2026-11-28", True), ("2026-11-29", False), ("2026-11-30", False)]
)
def test_stale_when_older_than_the_newest_closable_day(as_of: str, stale: bool) -> None:
    body = shape_record("S1", indicator(as_of), {}, date(2026, 11, 29))
    assert body["stale"] is stale
    assert body["as_of"] == as_of
