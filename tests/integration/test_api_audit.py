"""Staff reads are audited in real PostgreSQL before they are answered, and fail closed.

A staff read whose audit row cannot be written (no audit log configured, the database
down, the table gone) is a 503, whoever the target; a student's read of their own record
is not audited and keeps working.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from api.access import Principal, Role
from leap.settings import Settings
from leap.state_keys import indicator_key
from tests.integration.api_client import bearer, serve
from tests.integration.leap_db import migrated_pool
from tests.integration.test_api import free_port
from tests.integration.test_api_auth import INDICATOR, OTHER, OWN, ROSTER

pytestmark = pytest.mark.integration

TUTOR = Principal(Role.TUTOR, "T0001")  # OWN's tutor, not OTHER's
STUDENT = Principal(Role.STUDENT, OWN)
ENGAGEMENT = "GET /v1/students/{student_id}/engagement"


@pytest.fixture
async def settings(redis_url: str, redis_prefix: str) -> Settings:
    store = aioredis.Redis.from_url(redis_url)
    for sid in (OWN, OTHER):
        await store.hset(indicator_key(redis_prefix, sid), mapping={**INDICATOR, "student_id": sid})
    await store.aclose()
    return Settings(
        redis_url=redis_url, redis_prefix=redis_prefix, kafka_bootstrap=f"127.0.0.1:{free_port()}"
    )


@pytest.fixture
async def pool(postgres_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    async with migrated_pool(postgres_dsn) as pool:
        yield pool


async def get(client: httpx.AsyncClient, sid: str, principal: Principal) -> httpx.Response:
    return await client.get(f"/v1/students/{sid}/engagement", headers=bearer(principal))


async def test_allowed_and_denied_reads_are_rows(
    settings: Settings, postgres_dsn: str, pool: asyncpg.Pool
) -> None:
    started = datetime.now(UTC)
    async with serve(
        settings.model_copy(update={"postgres_dsn": postgres_dsn}), roster=ROSTER
    ) as c:
        assert (await get(c, OWN, TUTOR)).status_code == 200
        assert (await get(c, OTHER, TUTOR)).status_code == 404
        assert (await get(c, OWN, STUDENT)).status_code == 200  # their own: not audited
    rows = await pool.fetch(
        "SELECT at, actor_sub, actor_role, student_id, endpoint, allowed "
        "FROM leap.audit_log ORDER BY id"
    )
    assert [tuple(r)[1:] for r in rows] == [
        ("T0001", "tutor", OWN, ENGAGEMENT, True),
        ("T0001", "tutor", OTHER, ENGAGEMENT, False),
    ]
    assert all(started <= r["at"] <= datetime.now(UTC) for r in rows)


async def test_no_audit_table_fails_staff_reads_closed(
    settings: Settings, postgres_dsn: str, pool: asyncpg.Pool
) -> None:
    async with serve(
        settings.model_copy(update={"postgres_dsn": postgres_dsn}), roster=ROSTER
    ) as c:
        assert (await get(c, OWN, TUTOR)).status_code == 200
        await pool.execute("DROP TABLE leap.audit_log")
        for sid in (OWN, OTHER):  # allowed or not: the same 503, no data
            response = await get(c, sid, TUTOR)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            assert response.json()["type"] == "urn:leap:problem:audit-unavailable"
            assert "score" not in response.text
        assert (await get(c, OWN, STUDENT)).status_code == 200


async def test_no_audit_log_configured(settings: Settings) -> None:
    async with serve(settings, roster=ROSTER, audit_log=False) as c:
        response = await get(c, OWN, TUTOR)
        assert response.status_code == 503
        assert response.json()["type"] == "urn:leap:problem:audit-not-configured"
        assert "LEAP_POSTGRES_DSN" in response.json()["detail"]
        assert "retry-after" not in response.headers
        assert (await get(c, OWN, STUDENT)).status_code == 200


async def test_database_down_at_start_then_back(settings: Settings, postgres_dsn: str) -> None:
    """The API starts without its database and serves students; staff reads are 503 until
    the database is there, then audited without a restart."""
    missing = postgres_dsn.replace("/leaptest_", "/leaptest_later_", 1)
    assert missing != postgres_dsn
    name = urlsplit(missing).path.lstrip("/")
    assert name.startswith("leaptest_later_")
    admin = await asyncpg.connect(postgres_dsn)
    try:
        async with serve(settings.model_copy(update={"postgres_dsn": missing}), roster=ROSTER) as c:
            assert (await get(c, OWN, STUDENT)).status_code == 200
            down = await get(c, OWN, TUTOR)
            assert down.status_code == 503
            assert down.headers["retry-after"] == "5"
            await admin.execute(f"CREATE DATABASE {name}")
            async with migrated_pool(missing) as later:
                deadline = datetime.now(UTC) + timedelta(seconds=10)
                while (response := await get(c, OWN, TUTOR)).status_code == 503:
                    assert datetime.now(UTC) < deadline, response.text
                    await asyncio.sleep(0.2)
                assert response.status_code == 200
                assert await later.fetchval("SELECT count(*) FROM leap.audit_log") == 1
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
