"""When a partition's local day closes: local midnight at the day's end, plus the grace."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leap.scoring import day_end
from streams.clock import MAX_CATCH_UP_DAYS, days_to_close, last_closable_day

LONDON = ZoneInfo("Europe/London")
GRACE = timedelta(hours=2)


def ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


def close_ms(day: date, grace: timedelta = GRACE) -> int:
    """The instant ``day`` becomes closable: its local end plus ``grace`` of elapsed time."""
    return ms(day_end(day, LONDON).astimezone(UTC) + grace)


# --- last_closable_day ------------------------------------------------------------------


@pytest.mark.parametrize("month", [2, 7], ids=["GMT", "BST"])
def test_yesterday_closes_only_once_the_grace_after_midnight_has_passed(month: int) -> None:
    today = date(2026, month, 10)
    yesterday, day_before = today - timedelta(days=1), today - timedelta(days=2)
    at_0159 = ms(datetime(2026, month, 10, 1, 59, tzinfo=LONDON))
    at_0200 = ms(datetime(2026, month, 10, 2, 0, tzinfo=LONDON))
    assert last_closable_day(at_0159, LONDON, GRACE) == day_before
    assert last_closable_day(at_0200 - 1, LONDON, GRACE) == day_before
    assert last_closable_day(at_0200, LONDON, GRACE) == yesterday


def test_without_grace_yesterday_closes_at_local_midnight() -> None:
    midnight = ms(datetime(2026, 7, 10, tzinfo=LONDON))
    assert last_closable_day(midnight - 1, LONDON, timedelta(0)) == date(2026, 7, 8)
    assert last_closable_day(midnight, LONDON, timedelta(0)) == date(2026, 7, 9)


def test_the_day_a_watermark_is_in_is_never_closable() -> None:
    late_evening = ms(datetime(2026, 7, 10, 23, 59, tzinfo=LONDON))
    assert last_closable_day(late_evening, LONDON, GRACE) == date(2026, 7, 9)


@pytest.mark.parametrize(
    ("day", "closes_at"),
    [
        # Clocks went back on 2026-10-25: midnight after it is 00:00 GMT, closing 02:00 GMT.
        (date(2026, 10, 25), datetime(2026, 10, 26, 2, 0, tzinfo=UTC)),
        # Clocks went forward on 2026-03-29: midnight after it is 00:00 BST, closing 02:00 BST.
        (date(2026, 3, 29), datetime(2026, 3, 30, 1, 0, tzinfo=UTC)),
    ],
)
def test_a_dst_day_closes_at_its_local_midnight_plus_grace(day: date, closes_at: datetime) -> None:
    before = day - timedelta(days=1)
    assert last_closable_day(ms(closes_at) - 1, LONDON, GRACE) == before
    assert last_closable_day(ms(closes_at), LONDON, GRACE) == day
    assert days_to_close(before, ms(closes_at) - 1, LONDON, GRACE) == []
    assert days_to_close(before, ms(closes_at), LONDON, GRACE) == [day]


@given(
    watermark=st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    grace_minutes=st.integers(0, 6 * 60),
)
def test_the_newest_closable_day_is_the_last_whose_end_plus_grace_has_passed(
    watermark: datetime, grace_minutes: int
) -> None:
    grace = timedelta(minutes=grace_minutes)
    now = ms(watermark)
    day = last_closable_day(now, LONDON, grace)
    assert close_ms(day, grace) <= now < close_ms(day + timedelta(days=1), grace)


# --- days_to_close ----------------------------------------------------------------------

NOON = ms(datetime(2026, 2, 10, 12, 0, tzinfo=LONDON))  # newest closable: 2026-02-09


def test_a_partition_seen_for_the_first_time_closes_nothing() -> None:
    assert days_to_close(None, NOON, LONDON, GRACE) == []


@pytest.mark.parametrize("last_closed", [date(2026, 2, 9), date(2026, 2, 10), date(2026, 3, 1)])
def test_nothing_closes_when_no_new_day_has_ended(last_closed: date) -> None:
    assert days_to_close(last_closed, NOON, LONDON, GRACE) == []


def test_the_next_day_closes_when_it_has_ended() -> None:
    assert days_to_close(date(2026, 2, 8), NOON, LONDON, GRACE) == [date(2026, 2, 9)]


def test_after_a_gap_every_missed_day_closes_in_order() -> None:
    assert days_to_close(date(2026, 2, 5), NOON, LONDON, GRACE) == [
        date(2026, 2, 6),
        date(2026, 2, 7),
        date(2026, 2, 8),
        date(2026, 2, 9),
    ]


def test_catch_up_after_a_long_outage_is_capped_to_the_most_recent_days() -> None:
    days = days_to_close(date(2025, 6, 1), NOON, LONDON, GRACE)
    assert len(days) == MAX_CATCH_UP_DAYS
    assert days[-1] == date(2026, 2, 9)
    assert days[0] == date(2026, 2, 9) - timedelta(days=MAX_CATCH_UP_DAYS - 1)


@given(
    last_closed=st.dates(date(2025, 10, 1), date(2026, 12, 31)),
    watermark=st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC)),
)
def test_days_to_close_are_consecutive_new_days_ending_with_the_newest_closable(
    last_closed: date, watermark: datetime
) -> None:
    newest = last_closable_day(ms(watermark), LONDON, GRACE)
    days = days_to_close(last_closed, ms(watermark), LONDON, GRACE)
    if newest <= last_closed:
        assert days == []
        return
    assert days[-1] == newest
    assert days[0] > last_closed
    assert len(days) == min((newest - last_closed).days, MAX_CATCH_UP_DAYS)
    assert all(b - a == timedelta(days=1) for a, b in pairwise(days))
