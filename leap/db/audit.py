"""The audit log of staff reads: who read whose data, when, through which endpoint, and
whether it was allowed. A read whose audit row cannot be written must not happen, so
:meth:`AuditLog.record` raises :class:`AuditUnavailable` instead of logging and going on.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

__all__ = ["AuditLog", "AuditUnavailable"]

_INSERT = """
INSERT INTO leap.audit_log (at, actor_sub, actor_role, student_id, endpoint, allowed)
VALUES ($1, $2, $3, $4, $5, $6)
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
        if at.tzinfo is None:
            raise ValueError("audit times must be timezone-aware")
        try:
            await self.pool.execute(
                _INSERT, at, actor_sub, actor_role, student_id, endpoint, allowed
            )
        except _WRITE_ERRORS as exc:
            reason = str(exc) or type(exc).__name__
            raise AuditUnavailable(f"audit row not written: {reason}") from exc
