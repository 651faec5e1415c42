"""Retention cut-offs: pure date arithmetic on a fixed clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leap.db.retention import cutoffs

LONDON = ZoneInfo("Europe/London")


def test_history_keeps_today_and_the_period_before_it() -> None:
    limits = cutoffs(datetime(2026, 7, 1, 0, 30, tzinfo=LONDON), 400, 730)
    assert limits.history_before == date(2025, 5, 27)
    assert limits.audit_before == datetime(2024, 7, 1, 0, 30, tzinfo=LONDON)


def test_today_is_the_date_in_nows_own_zone() -> None:
    """00:30 summer time is still yesterday in UTC: history counts local dates."""
    local = datetime(2026, 7, 1, 0, 30, tzinfo=LONDON)
    assert cutoffs(local, 1, 1).history_before == date(2026, 6, 30)
    assert cutoffs(local.astimezone(UTC), 1, 1).history_before == date(2026, 6, 29)


@given(
    now=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(LONDON)
    ),
    history_days=st.integers(1, 5000),
    audit_days=st.integers(1, 5000),
)
def test_exactly_the_period_is_kept(now: datetime, history_days: int, audit_days: int) -> None:
    limits = cutoffs(now, history_days, audit_days)
    assert (now.date() - limits.history_before).days == history_days
    assert limits.audit_before < now
    assert limits.audit_before.replace(tzinfo=None) == now.replace(tzinfo=None) - timedelta(
        days=audit_days
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cutoffs(datetime(2026, 7, 1), 400, 730)


@pytest.mark.parametrize(("history_days", "audit_days"), [(0, 730), (400, 0), (-1, 1)])
def test_periods_under_a_day_are_refused(history_days: int, audit_days: int) -> None:
    with pytest.raises(ValueError, match="at least one day"):
        cutoffs(datetime(2026, 7, 1, tzinfo=LONDON), history_days, audit_days)
