"""The audit log of staff reads: who read whose data, when, through which endpoint, and
whether it was allowed. A read whose audit row cannot be written must not happen, so
:meth:`AuditLog.record` raises :class:`AuditUnavailable` instead of logging and going on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

__all__ = ["AuditLog", "AuditUnavailable"]

_INSERT = """
INSERT INTO leap.audit_log (at, actor_sub, actor_role, student_id, endpoint, allowed)
VALUES ($1, $2, $3, $4, $5, $6)
"""

_INSERT_MANY = """
INSERT INTO leap.audit_log (at, actor_sub, actor_role, student_id, endpoint, allowed)
SELECT $1, $2, $3, student_id, $5, $6 FROM unnest($4::text[]) AS listed(student_id)
"""

#: Everything that means "the row was not written": the database refused it, the pool is
#: closed, the connection broke, or the statement timed out.
_WRITE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class AuditUnavailable(RuntimeError):
    """The audit row was not written: the read it guards must fail (e.g. 503)."""


class AuditLog:
    """Appends to ``leap.audit_log`` through a pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(
        self,
        actor_sub: str,
        actor_role: str,
        student_id: str,
        endpoint: str,
        allowed: bool,
        at: datetime,
    ) -> None:
        """Write one row, committed before this returns; raise AuditUnavailable otherwise."""
        await self._write(_INSERT, at, actor_sub, actor_role, student_id, endpoint, allowed)

    async def record_many(
        self,
        actor_sub: str,
        actor_role: str,
        student_ids: Sequence[str],
        endpoint: str,
        allowed: bool,
        at: datetime,
    ) -> None:
        """One row per student of a listing (e.g. a tutor's tutees), all in one statement:
        either every row is committed or none is and AuditUnavailable is raised."""
        if student_ids:
            ids = list(student_ids)
            await self._write(_INSERT_MANY, at, actor_sub, actor_role, ids, endpoint, allowed)

    async def _write(self, statement: str, at: datetime, *args: object) -> None:
        if at.tzinfo is None:
            raise ValueError("audit times must be timezone-aware")
        try:
            await self.pool.execute(statement, at, *args)
        except _WRITE_ERRORS as exc:
            reason = str(exc) or type(exc).__name__
            raise AuditUnavailable(f"audit row not written: {reason}") from exc
