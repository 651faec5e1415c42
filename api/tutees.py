"""A tutor's tutees, most in need of a conversation first: the staff page's list.

Sorted by indicator (Very Low first), then by trend (most bands lost first), then by id;
tutees with no indicator yet come last. The trend is the number of bands moved since the
indicator of seven days before (from the history in PostgreSQL; null without a row that
day): -2 is "two bands lower than a week ago". Listing a tutee reads their data, so each
listed tutee gets an audit row, all in one statement, before anything is read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.access import Principal, Role, visible_tutees
from api.audit import audit_staff_read
from api.auth import authenticate
from api.database import Database, DatabaseNotConfigured
from api.engagement import LEVELS, CorruptIndicatorError, parse_indicator
from api.history import READ_ERRORS, history_unavailable
from api.metrics import AUTH_FAILURES
from api.params import tutor_id_param
from api.problems import ProblemError, problem_type
from leap.db.connection import DatabaseUnavailable
from leap.db.history import HistoryStore
from leap.reference import Student
from leap.state_keys import indicator_key

__all__ = ["TREND_DAYS", "band_rank", "sort_key", "tutees"]

#: The trend compares with the indicator this many days before the current one.
TREND_DAYS = 7

log = logging.getLogger(__name__)


def band_rank(indicator: str) -> int:
    """0 for Very Low up to 4 for High, so that a difference counts bands moved."""
    return len(LEVELS) - 1 - LEVELS.index(indicator)


def sort_key(entry: Mapping[str, Any]) -> tuple[int, bool, int, str]:
    """Lowest band first, then the steepest fall, then unknown trends; unscored last."""
    indicator = entry["indicator"]
    rank = len(LEVELS) if indicator is None else band_rank(indicator)
    trend = entry["trend"]
    return rank, trend is None, trend or 0, entry["student_id"]


def unknown_tutor(tutor_id: str) -> ProblemError:
    return ProblemError(
        404,
        "Unknown tutor",
        f"There are no tutees of {tutor_id} that you may see.",
        type_=problem_type("unknown-tutor"),
    )


async def _current(
    redis: Redis, prefix: str, students: Sequence[Student]
) -> dict[str, dict[str, Any]]:
    """Each scored tutee's indicator fields; a corrupt hash is logged and left out, so one
    bad record does not hide the whole list."""
    async with redis.pipeline(transaction=False) as pipe:
        for student in students:
            pipe.hgetall(indicator_key(prefix, student.student_id))
        hashes = await pipe.execute()
    current: dict[str, dict[str, Any]] = {}
    for student, raw in zip(students, hashes, strict=True):
        if not raw:
            continue
        try:
            current[student.student_id] = parse_indicator(raw)
        except CorruptIndicatorError as exc:
            log.error("Corrupt indicator for student %s: %s", student.student_id, exc)
    return current


async def _week_before(
    database: Database, current: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    days: dict[str, date] = {
        sid: fields["as_of"] - timedelta(days=TREND_DAYS) for sid, fields in current.items()
    }
    try:
        return await HistoryStore(await database.pool()).indicators_on(days)
    except (DatabaseNotConfigured, DatabaseUnavailable, *READ_ERRORS) as exc:
        raise history_unavailable(exc) from None


def _entry(
    student: Student, fields: Mapping[str, Any] | None, before: str | None
) -> dict[str, Any]:
    if fields is None:
        return {
            "student_id": student.student_id,
            **dict.fromkeys(("indicator", "label", "score", "as_of", "trend")),
        }
    trend = None if before is None else band_rank(fields["indicator"]) - band_rank(before)
    return {
        "student_id": student.student_id,
        "indicator": fields["indicator"],
        "label": fields["label"],
        "score": fields["score"],
        "as_of": fields["as_of"].isoformat(),
        "trend": trend,
    }


def _refused(principal: Principal, tutor_id: str, roster: Mapping[str, Student]) -> bool:
    """A valid token turned away from tutees that exist (counted like a refused student)."""
    return principal.role is not Role.ADMIN and any(s.tutor_id == tutor_id for s in roster.values())


async def tutees(request: Request) -> JSONResponse:
    """GET /v1/tutors/{tutor_id}/tutees."""
    tutor_id = tutor_id_param(request)
    principal = await authenticate(request)
    roster = request.app.state.roster
    listed = visible_tutees(principal, tutor_id, roster)
    if listed is None:
        if _refused(principal, tutor_id, roster):
            AUTH_FAILURES.labels("forbidden").inc()
        raise unknown_tutor(tutor_id)
    await audit_staff_read(request, principal, [s.student_id for s in listed], True)
    state = request.app.state
    current = await _current(state.redis, state.settings.redis_prefix, listed)
    before = await _week_before(state.database, current) if current else {}
    entries = [
        {
            **_entry(s, current.get(s.student_id), before.get(s.student_id)),
            "course": s.course,
            "year": s.year,
            "contact_allowed": state.preferences.allows(s.student_id),
        }
        for s in listed
    ]
    body = {"tutor_id": tutor_id, "tutees": sorted(entries, key=sort_key)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
