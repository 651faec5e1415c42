"""LEAP's PostgreSQL schema on a test's private database (the ``postgres_dsn`` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from leap.db.connection import connect, create_pool
from leap.db.migrate import upgrade


@asynccontextmanager
async def migrated_pool(dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on ``dsn`` after `leap db upgrade`'s migrations, closed afterwards."""
    connection = await connect(dsn)
    try:
        await upgrade(connection)
    finally:
        await connection.close()
    pool = await create_pool(dsn, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
