"""A student's daily indicator history, from PostgreSQL, for trend charts.

Redis holds only the current indicator; every closed day's is kept in
``leap.indicator_history`` (written by the worker) for ``LEAP_HISTORY_RETENTION_DAYS``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.auth import authorize
from api.database import Database, DatabaseNotConfigured
from api.engagement import newest_closable
from api.params import only_query, query_date, student_id_param
from api.problems import RETRY_AFTER_SECONDS, ProblemError, problem_type
from leap.db.connection import DatabaseUnavailable
from leap.db.history import HistoryRow, HistoryStore
from leap.scoring import LABELS

__all__ = ["DEFAULT_DAYS", "MAX_SPAN_DAYS", "history", "history_unavailable", "row_json"]

#: Without ``since``: four weeks, what a trend chart on a staff page shows.
DEFAULT_DAYS = 28
#: The retention period: asking for more could only return less than it seems to promise.
MAX_SPAN_DAYS = 400
#: What "the history could not be read" looks like from asyncpg.
READ_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)

log = logging.getLogger(__name__)


def history_unavailable(exc: Exception) -> ProblemError:
    """The 503 for a history read that cannot be made, configured or not."""
    if isinstance(exc, DatabaseNotConfigured):
        return ProblemError(
            503,
            "History not configured",
            "This API keeps no indicator history (LEAP_POSTGRES_DSN is not set).",
            type_=problem_type("history-not-configured"),
        )
    log.warning("History unavailable: %r", exc)
    return ProblemError(
        503,
        "History unavailable",
        "Indicator history cannot be read right now; retry shortly.",
        type_=problem_type("history-unavailable"),
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def row_json(row: HistoryRow) -> dict[str, Any]:
    return {
        "as_of": row.as_of.isoformat(),
        "indicator": row.indicator,
        "label": LABELS[row.indicator],
        "score": row.score,
        "reference_score": row.reference_score,
        "window_days": row.window_days,
        "policy_version": row.policy_version,
        "course": row.course,
        "year": row.year,
        "breakdown": row.breakdown,
    }


async def history(request: Request) -> JSONResponse:
    """GET /v1/students/{student_id}/history?since=YYYY-MM-DD&until=YYYY-MM-DD."""
    student_id = student_id_param(request)
    only_query(request, "since", "until")
    settings = request.app.state.settings
    latest = newest_closable(datetime.now(UTC), settings.zone, settings.day_close_grace)
    until = query_date(request, "until", latest)
    since = query_date(request, "since", until - timedelta(days=DEFAULT_DAYS - 1))
    span = (until - since).days + 1
    if not 1 <= span <= MAX_SPAN_DAYS:
        raise ProblemError(
            400,
            "Invalid date range",
            f"since must not be after until, and the range may cover at most {MAX_SPAN_DAYS} days.",
            type_=problem_type("invalid-date-range"),
        )
    await authorize(request, student_id)
    database: Database = request.app.state.database
    try:
        rows = await HistoryStore(await database.pool()).read(student_id, since, until)
    except (DatabaseNotConfigured, DatabaseUnavailable, *READ_ERRORS) as exc:
        raise history_unavailable(exc) from None
    body = {
        "student_id": student_id,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "days": [row_json(row) for row in rows],
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
