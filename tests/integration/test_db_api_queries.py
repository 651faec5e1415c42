"""The queries the API adds to LEAP's PostgreSQL: a listing's audit rows in one statement
(all or none), and many students' indicators on given days in one round trip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest

from leap.db.audit import AuditLog, AuditUnavailable
from leap.db.history import HistoryStore
from tests.integration.leap_db import migrated_pool
from tests.integration.test_api_staff_pages import history_row

pytestmark = pytest.mark.integration

AT = datetime(2026, 10, 20, 9, 15, tzinfo=UTC)
LISTING = "GET /v1/tutors/{tutor_id}/tutees"


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(postgres_dsn) as pool:
        yield pool


async def test_record_many_is_all_or_nothing(pool: asyncpg.Pool) -> None:
    audit = AuditLog(pool)
    await audit.record_many("T1", "tutor", ["S1", "S2", "S3"], LISTING, True, AT)
    await audit.record_many("T1", "tutor", [], LISTING, True, AT)  # nothing listed: no rows
    rows = await pool.fetch(
        "SELECT at, actor_sub, student_id, endpoint, allowed FROM leap.audit_log"
    )
    assert sorted(tuple(r) for r in rows) == [
        (AT, "T1", s, LISTING, True) for s in ("S1", "S2", "S3")
    ]

    # One id the table refuses (NULL) fails the whole statement: no partial listing audit.
    with pytest.raises(AuditUnavailable):
        await audit.record_many("T1", "tutor", ["S4", None], LISTING, True, AT)  # type: ignore[list-item]
    assert await pool.fetchval("SELECT count(*) FROM leap.audit_log") == 3


async def test_indicators_on_given_days(pool: asyncpg.Pool) -> None:
    store = HistoryStore(pool)
    await store.upsert_days(
        [
            history_row("S1", date(2025, 3, 7), "low"),
            history_row("S1", date(2025, 3, 8), "high"),
            history_row("S2", date(2025, 3, 1), "good"),
        ]
    )
    days = {"S1": date(2025, 3, 7), "S2": date(2025, 3, 7), "S3": date(2025, 3, 7)}
    assert await store.indicators_on(days) == {"S1": "low"}
    assert await store.indicators_on({}) == {}
