"""Storage limitation: delete indicator history and audit rows kept past their periods.

The cut-offs are pure date arithmetic on a given ``now`` (:func:`cutoffs`), so the rules are
tested with a fixed clock; :func:`purge` only runs the two deletes (or counts, dry run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import asyncpg

__all__ = ["AUDIT_TABLE", "HISTORY_TABLE", "Cutoffs", "cutoffs", "purge"]

HISTORY_TABLE = "leap.indicator_history"
AUDIT_TABLE = "leap.audit_log"


@dataclass(frozen=True)
class Cutoffs:
    """Rows strictly before these are purged; rows on them are kept."""

    history_before: date
    audit_before: datetime


def cutoffs(now: datetime, history_days: int, audit_days: int) -> Cutoffs:
    """History keeps ``now``'s own date and the ``history_days`` dates before it; the audit
    log keeps rows from the same wall-clock time ``audit_days`` days ago on.

    ``now`` must be aware and in the institution's zone: its date is "today" for history,
    whose ``as_of`` dates are local dates."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (in the institution's zone)")
    if history_days < 1 or audit_days < 1:
        raise ValueError("retention periods are at least one day")
    return Cutoffs(now.date() - timedelta(days=history_days), now - timedelta(days=audit_days))


async def purge(
    pool: asyncpg.Pool,
    now: datetime,
    history_days: int,
    audit_days: int,
    *,
    dry_run: bool = False,
) -> dict[str, int]:
    """Delete (or with ``dry_run`` only count) rows past their periods; counts per table."""
    limits = cutoffs(now, history_days, audit_days)
    if dry_run:
        return {
            HISTORY_TABLE: await pool.fetchval(
                "SELECT count(*) FROM leap.indicator_history WHERE as_of < $1",
                limits.history_before,
            ),
            AUDIT_TABLE: await pool.fetchval(
                "SELECT count(*) FROM leap.audit_log WHERE at < $1", limits.audit_before
            ),
        }
    history = await pool.execute(
        "DELETE FROM leap.indicator_history WHERE as_of < $1", limits.history_before
    )
    audit = await pool.execute("DELETE FROM leap.audit_log WHERE at < $1", limits.audit_before)
    return {HISTORY_TABLE: _deleted(history), AUDIT_TABLE: _deleted(audit)}


def _deleted(status: str) -> int:
    """The row count of a ``DELETE n`` command status."""
    return int(status.rsplit(" ", 1)[1])
