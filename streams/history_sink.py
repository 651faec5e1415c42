"""Daily indicator history to PostgreSQL, never holding up the agents.

Banding queues one row per student and as-of date; a background task upserts them in
batches (``leap.db.history``: idempotent, so a re-banded or re-delivered day replaces its
row). While PostgreSQL is down rows wait in memory, coalesced by (student, day), and the
task retries with backoff; indicators, Redis and the API carry on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import date
from typing import Any

import asyncpg
from mode import Service

from leap.db.connection import DatabaseUnavailable, create_pool
from leap.db.history import HistoryRow, HistoryStore
from streams.metrics import HISTORY_ERRORS, HISTORY_PENDING_ROWS, HISTORY_WRITE_SECONDS

__all__ = ["HistorySink"]

log = logging.getLogger(__name__)

#: Rows per upsert statement.
BATCH_ROWS = 5000
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 30.0
STOP_FLUSH_SECONDS = 5.0
_DOWN = (DatabaseUnavailable, OSError, TimeoutError, asyncpg.InterfaceError)


class HistorySink(Service):
    def __init__(self, dsn: str, **kwargs: Any) -> None:
        self.dsn = dsn
        self.pending: dict[tuple[str, date], HistoryRow] = {}
        self.pool: asyncpg.Pool | None = None
        self._dirty = asyncio.Event()
        super().__init__(**kwargs)

    def add(self, rows: Iterable[HistoryRow]) -> None:
        for row in rows:
            self.pending[(row.student_id, row.as_of)] = row
        HISTORY_PENDING_ROWS.set(len(self.pending))
        self._dirty.set()

    @Service.task
    async def _flush_forever(self) -> None:
        failures = 0
        while not self.should_stop:
            if not failures:
                await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.flush()
            except _DOWN as exc:
                HISTORY_ERRORS.labels("unavailable").inc()
                if not failures:
                    log.warning("history writes failing, queueing them: %s", exc)
                failures += 1
                await self.sleep(min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (failures - 1)))
                continue
            if failures:
                log.warning("history writes resumed after %d failed attempts", failures)
            failures = 0

    async def flush(self) -> None:
        """Upsert every pending row; on failure the unsent ones wait (newer rows win)."""
        taken, self.pending = self.pending, {}
        rows = list(taken.values())
        try:
            if self.pool is None:
                self.pool = await create_pool(self.dsn, max_size=2)
            store = HistoryStore(self.pool)
            for start in range(0, len(rows), BATCH_ROWS):
                with HISTORY_WRITE_SECONDS.time():
                    await store.upsert_days(rows[start : start + BATCH_ROWS])
                for row in rows[start : start + BATCH_ROWS]:
                    del taken[(row.student_id, row.as_of)]
        except asyncpg.PostgresError as exc:
            if isinstance(exc, asyncpg.exceptions.UndefinedTableError):
                log.error("no history table: run `leap db upgrade`; rows kept meanwhile")
                raise DatabaseUnavailable(str(exc)) from exc
            # A row PostgreSQL refuses would be refused for ever: drop the batch, loudly.
            HISTORY_ERRORS.labels("rejected").inc()
            log.error("history batch of %d rows refused and dropped: %s", len(taken), exc)
            taken.clear()
        finally:
            for key, row in taken.items():
                self.pending.setdefault(key, row)
            HISTORY_PENDING_ROWS.set(len(self.pending))

    async def on_stop(self) -> None:
        with contextlib.suppress(*_DOWN, asyncpg.PostgresError):
            async with asyncio.timeout(STOP_FLUSH_SECONDS):
                await self.flush()
        if self.pending:
            log.warning("stopping with %d history rows unwritten", len(self.pending))
        if self.pool is not None:
            await self.pool.close()
