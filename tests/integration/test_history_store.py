"""The indicator history sink on real PostgreSQL: idempotent upserts, range reads, big batches."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta

import asyncpg
import pytest

from leap.db.history import HistoryRow, HistoryStore
from tests.integration.leap_db import migrated_pool

pytestmark = pytest.mark.integration

DAY = date(2026, 10, 20)


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(postgres_dsn) as pool:
        yield pool


def history_row(student_id: str, as_of: date, **changes: object) -> HistoryRow:
    row = HistoryRow(
        student_id=student_id,
        as_of=as_of,
        indicator="good",
        score=10.25,
        reference_score=11.5,
        window_days=7,
        breakdown={
            (as_of - timedelta(days=back)).isoformat(): {
                "engagement": 10.25,
                "sources": {"attendance": 1.0, "moodle": 1.0},
            }
            for back in range(7)
        },
        policy_version="stream-2026.1",
        course="PHYS",
        year=1,
        contact_allowed=True,
    )
    return replace(row, **changes)  # type: ignore[arg-type]


async def count(pool: asyncpg.Pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM leap.indicator_history")


async def test_the_same_day_twice_is_one_row_with_the_latest_values(pool: asyncpg.Pool) -> None:
    store = HistoryStore(pool)
    first = history_row("S1000001", DAY)
    again = history_row(
        "S1000001",
        DAY,
        indicator="low",
        score=2.5,
        reference_score=12.0,
        window_days=21,
        breakdown={DAY.isoformat(): {"engagement": 2.5, "sources": {"library": 1.0}}},
        policy_version="stream-2026.2",
        course="MATH",
        year=2,
        contact_allowed=False,
    )

    assert await store.upsert_days([first]) == 1
    assert await store.upsert_days([again]) == 1
    assert await store.upsert_days([again]) == 1

    assert await count(pool) == 1
    assert await store.read("S1000001", DAY, DAY) == [again]


async def test_one_batch_holding_a_day_twice_keeps_the_last(pool: asyncpg.Pool) -> None:
    store = HistoryStore(pool)
    older, newer = history_row("S1000001", DAY), history_row("S1000001", DAY, indicator="high")

    assert await store.upsert_days([older, newer]) == 1

    assert await store.read("S1000001", DAY, DAY) == [newer]


async def test_read_gives_one_students_days_in_range_oldest_first(pool: asyncpg.Pool) -> None:
    store = HistoryStore(pool)
    days = [DAY + timedelta(days=n) for n in range(10)]
    mine = [history_row("S1000001", day, score=float(n)) for n, day in enumerate(days)]
    theirs = [history_row("S1000002", day) for day in days]
    await store.upsert_days(reversed(mine + theirs))

    assert await store.read("S1000001", days[2], days[5]) == mine[2:6]
    assert await store.read("S1000001", days[0], days[-1]) == mine
    assert (
        await store.read("S1000001", days[-1] + timedelta(days=1), days[-1] + timedelta(30)) == []
    )
    assert await store.read("S1000003", days[0], days[-1]) == []


async def test_an_empty_batch_writes_nothing(pool: asyncpg.Pool) -> None:
    assert await HistoryStore(pool).upsert_days([]) == 0
    assert await count(pool) == 0


async def test_a_row_breaking_the_schema_is_refused(pool: asyncpg.Pool) -> None:
    """The table checks indicators, so a bug upstream cannot write an unknown level."""
    with pytest.raises(asyncpg.CheckViolationError):
        await HistoryStore(pool).upsert_days([history_row("S1000001", DAY, indicator="meh")])
    assert await count(pool) == 0


async def test_a_cohort_day_of_5000_students_in_one_statement(pool: asyncpg.Pool) -> None:
    store = HistoryStore(pool)
    rows = [history_row(f"S{1_000_000 + n}", DAY) for n in range(5000)]

    started = time.perf_counter()
    await store.upsert_days(rows)
    inserted = time.perf_counter() - started
    rows = [replace(row, indicator="partial") for row in rows]
    started = time.perf_counter()
    await store.upsert_days(rows)
    updated = time.perf_counter() - started

    print(f"\n5,000-row upsert: insert {inserted * 1000:.0f} ms, update {updated * 1000:.0f} ms")
    assert await count(pool) == 5000
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM leap.indicator_history WHERE indicator = 'partial'"
        )
        == 5000
    )
