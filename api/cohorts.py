"""A cohort's indicator distribution: how many of its students are at each level.

Aggregates only, so no audit row: the hash the worker writes per cohort on banding (see
``leap.state_keys``) holds counts, never ids. Only staff with a student in the cohort see
it; any other cohort, in scope or not, is one 404.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from api.access import Role, can_read_cohort
from api.auth import authenticate
from api.engagement import LEVELS, newest_closable
from api.metrics import AUTH_FAILURES
from api.params import cohort_params
from api.problems import ProblemError, problem_type
from leap.state_keys import cohort_key

__all__ = ["distribution", "parse_distribution"]

log = logging.getLogger(__name__)


def unknown_cohort(course: str, year: int) -> ProblemError:
    return ProblemError(
        404,
        "Unknown cohort",
        f"There is no distribution for {course} year {year} that you may see.",
        type_=problem_type("unknown-cohort"),
    )


def _count(text: str) -> int:
    count = int(text)
    if count < 0:
        raise ValueError(f"negative count {count}")
    return count


def parse_distribution(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """The hash's fields, typed; ValueError (or KeyError) if it breaks the contract."""
    fields = {key.decode(): value.decode() for key, value in raw.items()}
    as_of = date.fromisoformat(fields["as_of"])
    counts = {level: _count(fields[level]) for level in LEVELS}
    size = _count(fields["size"])
    if sum(counts.values()) != size:
        raise ValueError(f"counts add up to {sum(counts.values())}, not size {size}")
    reference_score = float(fields["reference_score"])
    if not math.isfinite(reference_score):
        raise ValueError(f"reference_score {reference_score}")
    return {
        "as_of": as_of,
        "reference_score": reference_score,
        "policy_version": fields["policy_version"],
        "size": size,
        "counts": counts,
    }


async def distribution(request: Request) -> JSONResponse:
    """GET /v1/cohorts/{course}/{year}/distribution."""
    course, year = cohort_params(request)
    principal = await authenticate(request)
    members = [s for s in request.app.state.roster.values() if (s.course, s.year) == (course, year)]
    if not can_read_cohort(principal, members):
        if members and principal.role is not Role.ADMIN:
            AUTH_FAILURES.labels("forbidden").inc()
        raise unknown_cohort(course, year)
    settings = request.app.state.settings
    raw = await request.app.state.redis.hgetall(cohort_key(settings.redis_prefix, course, year))
    if not raw:
        raise unknown_cohort(course, year)
    try:
        fields = parse_distribution(raw)
    except (ValueError, KeyError) as exc:  # UnicodeDecodeError is a ValueError
        log.error("Corrupt distribution for cohort %s|%s: %r", course, year, exc)
        raise ProblemError(
            500,
            "Distribution unreadable",
            "The stored distribution for this cohort cannot be read; this has been logged.",
            type_=problem_type("corrupt-distribution"),
        ) from exc
    closable = newest_closable(datetime.now(UTC), settings.zone, settings.day_close_grace)
    body = {
        "course": course,
        "year": year,
        **fields,
        "as_of": fields["as_of"].isoformat(),
        "stale": fields["as_of"] < closable,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
