"""The API's last closable day, kept between the instants it changes, is always the one
``streams.clock.last_closable_day`` gives for the same instant (the worker's rule)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.closable import ClosableDay
from streams.clock import close_instant, last_closable_day

LONDON = ZoneInfo("Europe/London")
AUCKLAND = ZoneInfo("Pacific/Auckland")
START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
YEAR_MS = 366 * 86_400_000


class Clock:
    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> float:
        return self.ms / 1000


def assert_agrees(zone: ZoneInfo, grace: timedelta, instants_ms: list[int]) -> None:
    clock = Clock()
    closable = ClosableDay(zone, grace, clock)
    for ms in instants_ms:
        clock.ms = ms
        assert closable.now() == last_closable_day(ms, zone, grace), ms


@pytest.mark.parametrize("zone", [LONDON, AUCKLAND])
@pytest.mark.parametrize(
    "grace", [timedelta(hours=2), timedelta(0), timedelta(seconds=1, microseconds=500_500)]
)
def test_agrees_to_the_millisecond_around_every_close_of_a_year(
    zone: ZoneInfo, grace: timedelta
) -> None:
    """Both clock changes included; each close instant passed forwards, then backwards."""
    instants = []
    day = date(2026, 1, 1)
    while day < date(2027, 1, 1):
        closes = int(close_instant(day, zone, grace).timestamp() * 1000)
        instants += [closes - 1000, closes - 1, closes, closes + 1, closes, closes - 1]
        day += timedelta(days=1)
    assert_agrees(zone, grace, instants)


@settings(max_examples=200)
@given(st.lists(st.integers(0, YEAR_MS), min_size=1, max_size=50))
def test_agrees_whatever_the_clock_does(offsets: list[int]) -> None:
    """Instants in any order: a wall clock may be set back."""
    assert_agrees(LONDON, timedelta(hours=2), [int(START * 1000) + o for o in offsets])
