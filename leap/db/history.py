"""Daily indicator history in ``leap.indicator_history``: an idempotent sink and its reader.

A row is one student's indicator as it stood at the close of one local day. The sink may be
handed the same day again (at-least-once delivery, replays, a re-closed day): the upsert
replaces the row, so history never holds a day twice. A batch is one statement over
``unnest`` arrays, so thousands of rows cost one round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

__all__ = ["HistoryRow", "HistoryStore", "as_columns"]


@dataclass(frozen=True)
class HistoryRow:
    """One student's indicator at the close of ``as_of`` (a local date).

    ``breakdown`` is what the indicator was worked out from, per day of the window and per
    source, e.g. ``{"2026-10-20": {"engagement": 11.5, "sources": {"moodle": 14.0}}}``."""

    student_id: str
    as_of: date
    indicator: str
    score: float
    reference_score: float
    window_days: int
    breakdown: Mapping[str, Any]
    policy_version: str
    course: str
    year: int
    contact_allowed: bool


_UPSERT = """
INSERT INTO leap.indicator_history (
    student_id, as_of, indicator, score, reference_score, window_days, breakdown,
    policy_version, course, year, contact_allowed
)
SELECT * FROM unnest(
    $1::text[], $2::date[], $3::text[], $4::float8[], $5::float8[], $6::int4[], $7::jsonb[],
    $8::text[], $9::text[], $10::int4[], $11::bool[]
)
ON CONFLICT (student_id, as_of) DO UPDATE SET
    indicator = EXCLUDED.indicator,
    score = EXCLUDED.score,
    reference_score = EXCLUDED.reference_score,
    window_days = EXCLUDED.window_days,
    breakdown = EXCLUDED.breakdown,
    policy_version = EXCLUDED.policy_version,
    course = EXCLUDED.course,
    year = EXCLUDED.year,
    contact_allowed = EXCLUDED.contact_allowed,
    recorded_at = now()
"""

_READ = """
SELECT student_id, as_of, indicator, score, reference_score, window_days, breakdown,
       policy_version, course, year, contact_allowed
FROM leap.indicator_history
WHERE student_id = $1 AND as_of BETWEEN $2 AND $3
ORDER BY as_of
"""

_INDICATORS_ON = """
SELECT h.student_id, h.indicator
FROM unnest($1::text[], $2::date[]) AS wanted(student_id, as_of)
JOIN leap.indicator_history AS h USING (student_id, as_of)
"""


def as_columns(rows: Iterable[HistoryRow]) -> list[list[Any]]:
    """Rows as one list per column (the upsert's arrays); the last row of a day wins.

    PostgreSQL refuses an upsert that touches one row twice, so a batch holding the same
    (student, day) twice keeps only its latest, as two batches in a row would."""
    latest = {(row.student_id, row.as_of): row for row in rows}
    columns: list[list[Any]] = [[] for _ in range(11)]
    for row in latest.values():
        values = (
            row.student_id,
            row.as_of,
            row.indicator,
            row.score,
            row.reference_score,
            row.window_days,
            json.dumps(row.breakdown, separators=(",", ":")),  # jsonb orders keys itself
            row.policy_version,
            row.course,
            row.year,
            row.contact_allowed,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


class HistoryStore:
    """Writes and reads ``leap.indicator_history`` through a pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def upsert_days(self, rows: Iterable[HistoryRow]) -> int:
        """Insert or replace each (student, day) in one statement; return the rows written."""
        columns = as_columns(rows)
        if not columns[0]:
            return 0
        await self.pool.execute(_UPSERT, *columns)
        return len(columns[0])

    async def read(self, student_id: str, since: date, until: date) -> list[HistoryRow]:
        """One student's days from ``since`` to ``until`` (both included), oldest first."""
        records = await self.pool.fetch(_READ, student_id, since, until)
        return [
            HistoryRow(**{**dict(record), "breakdown": json.loads(record["breakdown"])})
            for record in records
        ]

    async def indicators_on(self, days: Mapping[str, date]) -> dict[str, str]:
        """Each student's indicator on their given day (e.g. a week before their current
        one), in one round trip; students with no row that day are left out."""
        if not days:
            return {}
        records = await self.pool.fetch(_INDICATORS_ON, list(days), list(days.values()))
        return {record["student_id"]: record["indicator"] for record in records}
