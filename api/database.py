"""LEAP's PostgreSQL as the API reaches it: opened at start if it can be, else when needed.

A database that is down when the API starts must not stop it serving students their own
indicators (which need no database), so a failed start-up connection is only logged and
the pool is created on first use. While it keeps failing, one attempt per
``RETRY_SECONDS`` is made and the requests in between fail at once, rather than each
waiting on its own connection attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg

from leap.db.connection import DatabaseUnavailable, create_pool, redacted

__all__ = ["CONNECT_TIMEOUT", "RETRY_SECONDS", "Database", "DatabaseNotConfigured"]

#: Seconds to open a pool within a request; a request should not hang on a dead host.
CONNECT_TIMEOUT = 3.0
RETRY_SECONDS = 1.0
POOL_SIZE = 10

log = logging.getLogger(__name__)


class DatabaseNotConfigured(RuntimeError):
    """``LEAP_POSTGRES_DSN`` is unset: there is no audit log and no history."""


class Database:
    def __init__(self, dsn: str | None) -> None:
        self.dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        self._failed_at: float | None = None

    async def open(self) -> None:
        """Try to connect now (at start-up); a failure is logged and retried on first use."""
        if self.dsn is None:
            log.warning("LEAP_POSTGRES_DSN is unset: staff reads and history answer 503")
            return
        try:
            await self.pool()
        except DatabaseUnavailable as exc:
            log.warning("PostgreSQL unavailable at start, will retry when needed: %s", exc)

    async def pool(self) -> asyncpg.Pool:
        """The pool, or DatabaseNotConfigured / DatabaseUnavailable."""
        if self.dsn is None:
            raise DatabaseNotConfigured("LEAP_POSTGRES_DSN is not set")
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is not None:
                return self._pool
            if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_SECONDS:
                raise DatabaseUnavailable(f"PostgreSQL at {redacted(self.dsn)} was unreachable")
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    self._pool = await create_pool(self.dsn, max_size=POOL_SIZE)
            except (DatabaseUnavailable, TimeoutError) as exc:
                self._failed_at = time.monotonic()
                if isinstance(exc, DatabaseUnavailable):
                    raise
                raise DatabaseUnavailable(
                    f"PostgreSQL at {redacted(self.dsn)} did not answer within {CONNECT_TIMEOUT} s"
                ) from exc
            self._failed_at = None
            log.info("connected to PostgreSQL at %s", redacted(self.dsn))
            return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
