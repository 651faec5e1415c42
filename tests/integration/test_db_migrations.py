"""Schema migrations on real PostgreSQL: applied once, in order, atomically, by one upgrader."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest

from leap.db.connection import connect
from leap.db.migrate import LOCK_KEY, Migration, MigrationError, load_migrations, upgrade

pytestmark = pytest.mark.integration

TABLES = ["leap.schema_migrations", "leap.indicator_history", "leap.audit_log"]


@pytest.fixture
async def connection(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(postgres_dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def exists(connection: asyncpg.Connection, table: str) -> bool:
    return await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table)


async def recorded(connection: asyncpg.Connection) -> list[tuple[int, str, str]]:
    rows = await connection.fetch(
        "SELECT version, name, checksum FROM leap.schema_migrations ORDER BY version"
    )
    return [(r["version"], r["name"], r["checksum"]) for r in rows]


async def test_fresh_database_is_upgraded_once(connection: asyncpg.Connection) -> None:
    shipped = load_migrations()
    assert [m.name for m in shipped][:2] == [
        "0001_history_audit.sql",
        "0002_connector_checkpoints.sql",
    ]
    for table in TABLES:
        assert not await exists(connection, table)

    applied = await upgrade(connection)

    assert applied == shipped
    for table in [*TABLES, "leap.connector_checkpoints"]:
        assert await exists(connection, table), table
    assert await recorded(connection) == [(m.version, m.name, m.checksum) for m in shipped]
    first_applied_at = await connection.fetch("SELECT applied_at FROM leap.schema_migrations")

    assert await upgrade(connection) == []
    assert await connection.fetch("SELECT applied_at FROM leap.schema_migrations") == (
        first_applied_at
    )


async def test_checkpoints_table_made_by_the_connector_is_adopted(
    connection: asyncpg.Connection,
) -> None:
    """A Moodle connector that ran before the first upgrade already made its table."""
    await connection.execute(
        "CREATE SCHEMA leap; CREATE TABLE leap.connector_checkpoints "
        "(connector text PRIMARY KEY, position bigint NOT NULL, "
        "updated_at timestamptz NOT NULL DEFAULT now())"
    )
    await connection.execute("INSERT INTO leap.connector_checkpoints VALUES ('moodle:x', 42)")

    await upgrade(connection)

    assert await connection.fetchval("SELECT position FROM leap.connector_checkpoints") == 42


async def test_changed_applied_migration_is_refused(connection: asyncpg.Connection) -> None:
    shipped = load_migrations()
    await upgrade(connection, shipped)
    edited = [replace(shipped[0], sql=shipped[0].sql + "\n-- tidied up\n"), *shipped[1:]]
    newer = Migration(9999, "9999_later.sql", "CREATE TABLE leap.later (id int)")

    with pytest.raises(MigrationError, match=re.escape("0001_history_audit.sql was changed")):
        await upgrade(connection, [*edited, newer])

    assert not await exists(connection, "leap.later")
    assert [r[0] for r in await recorded(connection)] == [m.version for m in shipped]


async def test_failing_migration_is_rolled_back_and_not_recorded(
    connection: asyncpg.Connection,
) -> None:
    shipped = load_migrations()
    broken = Migration(9999, "9999_broken.sql", "CREATE TABLE leap.half (id int); SELECT 1 / 0;")

    with pytest.raises(MigrationError, match=re.escape("9999_broken.sql failed")):
        await upgrade(connection, [*shipped, broken])

    assert not await exists(connection, "leap.half")
    assert [r[0] for r in await recorded(connection)] == [m.version for m in shipped]
    # The lock was released: the next upgrade runs (and applies the fixed file).
    fixed = replace(broken, sql="CREATE TABLE leap.half (id int);")
    assert await upgrade(connection, [*shipped, fixed]) == [fixed]


async def test_concurrent_upgrades_apply_each_migration_once(
    postgres_dsn: str, connection: asyncpg.Connection
) -> None:
    """Two upgraders started together: one applies everything, the other waits, finds
    nothing to do, and neither fails (without the lock, both would try CREATE TABLE)."""
    await connection.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    first, second = await connect(postgres_dsn), await connect(postgres_dsn)
    try:
        upgrades = [asyncio.create_task(upgrade(c)) for c in (first, second)]
        waiting = 0
        for _ in range(100):
            waiting = await connection.fetchval(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE d.datname = current_database() AND l.locktype = 'advisory' "
                "AND NOT l.granted"
            )
            if waiting == 2:
                break
            await asyncio.sleep(0.05)
        assert waiting == 2, "both upgraders should be queued on the advisory lock"
        assert not await exists(connection, "leap.schema_migrations")

        await connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        results = await asyncio.wait_for(asyncio.gather(*upgrades), timeout=30)
    finally:
        await first.close()
        await second.close()

    shipped = load_migrations()
    assert sorted(results, key=len) == [[], shipped]
    assert [r[0] for r in await recorded(connection)] == [m.version for m in shipped]
