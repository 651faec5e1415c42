"""No-engagement alert rules (``leap.alerts``)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leap.alerts import inactive_days, review_alert

D = date(2026, 11, 20)


def engagement(active: set[date]):  # type: ignore[no-untyped-def]
    return lambda day: 1.0 if day in active else 0.0


def never(_: date) -> bool:
    return False


def test_counts_back_to_the_last_active_day() -> None:
    active = {D - timedelta(days=3)}
    assert inactive_days(engagement(active), D, never, D - timedelta(days=30), 7) == 3
    assert inactive_days(engagement({D}), D, never, D - timedelta(days=30), 7) == 0


def test_stops_at_enough_and_at_the_start_of_history() -> None:
    assert inactive_days(engagement(set()), D, never, D - timedelta(days=30), 7) == 7
    assert inactive_days(engagement(set()), D, never, D - timedelta(days=2), 7) == 3


def test_holidays_are_skipped_not_counted() -> None:
    holiday = {D - timedelta(days=n) for n in range(1, 4)}
    active = {D - timedelta(days=6)}
    got = inactive_days(engagement(active), D, holiday.__contains__, D - timedelta(days=30), 7)
    assert got == 3  # D, D-4 and D-5; D-1..D-3 are the holiday


@pytest.mark.parametrize(
    ("raised", "inactive", "allowed", "holiday", "action"),
    [
        (False, 7, True, False, "raise"),
        (False, 6, True, False, None),
        (False, 7, False, False, None),  # opted out: never raised
        (False, 7, True, True, None),  # holiday: paused
        (True, 7, True, False, None),  # raised once, not repeated
        (True, 8, True, True, None),
        (True, 0, True, False, "clear"),  # activity resumed
        (True, 3, True, False, "clear"),  # late data broke the streak
        (True, 7, False, False, "clear"),  # opted out after it was raised
    ],
)
def test_review(raised: bool, inactive: int, allowed: bool, holiday: bool, action: str) -> None:
    assert review_alert(raised, inactive, 7, allowed, holiday) == action


@given(st.sets(st.integers(0, 40)), st.integers(1, 10))
def test_the_streak_is_never_longer_than_the_gap_since_activity(
    active_offsets: set[int], enough: int
) -> None:
    active = {D - timedelta(days=n) for n in active_offsets}
    got = inactive_days(engagement(active), D, never, D - timedelta(days=40), enough)
    gap = min(active_offsets, default=41)
    assert got == min(gap, enough)
