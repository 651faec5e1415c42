"""Retention on real PostgreSQL with a fixed clock: rows past their period go, the boundary
day stays, and a dry run only counts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from leap.db.audit import AuditLog
from leap.db.history import HistoryRow, HistoryStore
from leap.db.retention import AUDIT_TABLE, HISTORY_TABLE, purge
from tests.integration.leap_db import migrated_pool

pytestmark = pytest.mark.integration

LONDON = ZoneInfo("Europe/London")
#: Half past midnight in summer time: still 30 June in UTC, so "today" must be the local date.
NOW = datetime(2026, 7, 1, 0, 30, tzinfo=LONDON)
HISTORY_DAYS, AUDIT_DAYS = 400, 730
#: The oldest date and instant kept.
HISTORY_KEPT_FROM = date(2025, 5, 27)  # 2026-07-01 minus 400 days
AUDIT_KEPT_FROM = datetime(2024, 7, 1, 0, 30, tzinfo=LONDON)


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(postgres_dsn) as pool:
        yield pool


def day_row(as_of: date) -> HistoryRow:
    return HistoryRow("S1000001", as_of, "good", 9.0, 10.0, 7, {}, "p", "PHYS", 1, True)


async def fill(pool: asyncpg.Pool) -> None:
    history = [HISTORY_KEPT_FROM - timedelta(days=n) for n in (1, 2, 30)]
    history += [HISTORY_KEPT_FROM, HISTORY_KEPT_FROM + timedelta(days=1), NOW.date()]
    await HistoryStore(pool).upsert_days(day_row(day) for day in history)
    audit = AuditLog(pool)
    for at in (
        AUDIT_KEPT_FROM - timedelta(days=100),
        AUDIT_KEPT_FROM - timedelta(microseconds=1),
        AUDIT_KEPT_FROM,
        NOW,
    ):
        await audit.record("tutor-7", "tutor", "S1000001", "GET /x", True, at)


async def remaining(pool: asyncpg.Pool) -> tuple[list[date], list[datetime]]:
    days = await pool.fetch("SELECT as_of FROM leap.indicator_history ORDER BY as_of")
    times = await pool.fetch("SELECT at FROM leap.audit_log ORDER BY at")
    return [r["as_of"] for r in days], [r["at"] for r in times]


async def test_purge_deletes_rows_past_their_periods_and_keeps_the_boundary(
    pool: asyncpg.Pool,
) -> None:
    await fill(pool)

    counts = await purge(pool, NOW, HISTORY_DAYS, AUDIT_DAYS)

    assert counts == {HISTORY_TABLE: 3, AUDIT_TABLE: 2}
    days, times = await remaining(pool)
    assert days == [HISTORY_KEPT_FROM, HISTORY_KEPT_FROM + timedelta(days=1), NOW.date()]
    assert times == [AUDIT_KEPT_FROM, NOW]
    assert await purge(pool, NOW, HISTORY_DAYS, AUDIT_DAYS) == {HISTORY_TABLE: 0, AUDIT_TABLE: 0}


async def test_dry_run_counts_and_deletes_nothing(pool: asyncpg.Pool) -> None:
    await fill(pool)
    before = await remaining(pool)

    counts = await purge(pool, NOW, HISTORY_DAYS, AUDIT_DAYS, dry_run=True)

    assert counts == {HISTORY_TABLE: 3, AUDIT_TABLE: 2}
    assert await remaining(pool) == before
    assert len(before[0]) == 6
    assert len(before[1]) == 4


async def test_a_day_later_the_boundary_day_goes(pool: asyncpg.Pool) -> None:
    await fill(pool)

    await purge(pool, NOW + timedelta(days=1), HISTORY_DAYS, AUDIT_DAYS)

    days, times = await remaining(pool)
    assert days == [HISTORY_KEPT_FROM + timedelta(days=1), NOW.date()]
    assert times == [NOW]
