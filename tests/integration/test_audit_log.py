"""The audit log on real PostgreSQL: every record is a committed row, and a row that cannot
be written is an exception (so the read it guards can fail closed), never a silent skip."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from leap.db.audit import AuditLog, AuditUnavailable
from tests.integration.leap_db import migrated_pool

pytestmark = pytest.mark.integration

AT = datetime(2026, 10, 20, 9, 15, 30, 123456, tzinfo=UTC)
ENDPOINT = "GET /v1/students/{student_id}/engagement"


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(postgres_dsn) as pool:
        yield pool


async def audit_rows(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        "SELECT at, actor_sub, actor_role, student_id, endpoint, allowed "
        "FROM leap.audit_log ORDER BY id"
    )
    return [tuple(row) for row in rows]


async def test_allowed_and_denied_reads_are_recorded(pool: asyncpg.Pool) -> None:
    audit = AuditLog(pool)

    await audit.record("tutor-7", "tutor", "S1000001", ENDPOINT, True, AT)
    await audit.record("tutor-7", "tutor", "S1000002", ENDPOINT, False, AT + timedelta(seconds=1))

    assert await audit_rows(pool) == [
        (AT, "tutor-7", "tutor", "S1000001", ENDPOINT, True),
        (AT + timedelta(seconds=1), "tutor-7", "tutor", "S1000002", ENDPOINT, False),
    ]


async def test_refused_insert_raises_and_writes_nothing(pool: asyncpg.Pool) -> None:
    """A role that may not insert (e.g. a mis-granted API role) must stop reads."""
    audit = AuditLog(pool)
    await pool.execute("REVOKE INSERT ON leap.audit_log FROM CURRENT_USER")

    with pytest.raises(AuditUnavailable, match="permission denied"):
        await audit.record("tutor-7", "tutor", "S1000001", ENDPOINT, True, AT)
    assert await audit_rows(pool) == []

    await pool.execute("GRANT INSERT ON leap.audit_log TO CURRENT_USER")
    await audit.record("tutor-7", "tutor", "S1000001", ENDPOINT, True, AT)
    assert len(await audit_rows(pool)) == 1


async def test_missing_table_raises(pool: asyncpg.Pool) -> None:
    """A database that was never upgraded (or was restored without the table)."""
    await pool.execute("DROP TABLE leap.audit_log")

    with pytest.raises(AuditUnavailable, match="audit_log"):
        await AuditLog(pool).record("tutor-7", "tutor", "S1000001", ENDPOINT, True, AT)


async def test_unreachable_database_raises(postgres_dsn: str) -> None:
    """The pool's connections are gone (here: closed), as when PostgreSQL is down."""
    async with migrated_pool(postgres_dsn) as pool:
        audit = AuditLog(pool)
    with pytest.raises(AuditUnavailable):
        await audit.record("tutor-7", "tutor", "S1000001", ENDPOINT, True, AT)
