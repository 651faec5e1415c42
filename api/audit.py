"""The audit of staff reads, as routes use it: recorded before the read, or no read at all.

Every request by staff (tutor, department, admin) that names one student, or lists
students, writes one row per student (who, whose, when, which endpoint, allowed or not)
*before* anything of theirs is read. If the row cannot be written the request fails closed
with a 503, whatever the target: so the 503 tells nothing about whether a student exists.
A student's reads of their own record are not audited.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from starlette.requests import Request

from api.access import Principal, is_staff
from api.database import Database, DatabaseNotConfigured
from api.metrics import AUDIT_FAILURES
from api.problems import RETRY_AFTER_SECONDS, ProblemError, problem_type
from leap.db.audit import AuditLog, AuditUnavailable
from leap.db.connection import DatabaseUnavailable

__all__ = ["audit_staff_read", "endpoint_of"]

log = logging.getLogger(__name__)


def endpoint_of(request: Request) -> str:
    """``GET /v1/students/{student_id}/engagement``: the route template, never the id."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', request.url.path)}"


async def audit_staff_read(
    request: Request, principal: Principal, student_ids: Sequence[str], allowed: bool
) -> None:
    """Record a staff request for ``student_ids``; a 503 problem if that is impossible."""
    if not is_staff(principal) or not student_ids:
        return
    database: Database = request.app.state.database
    try:
        pool = await database.pool()
        await AuditLog(pool).record_many(
            principal.sub,
            principal.role.value,
            student_ids,
            endpoint_of(request),
            allowed,
            datetime.now(UTC),
        )
    except DatabaseNotConfigured:
        AUDIT_FAILURES.labels("unconfigured").inc()
        raise ProblemError(
            503,
            "Audit log not configured",
            "Staff reads of a student's data are audited, and this API has no audit log "
            "(LEAP_POSTGRES_DSN is not set), so they are refused.",
            type_=problem_type("audit-not-configured"),
        ) from None
    except (DatabaseUnavailable, AuditUnavailable) as exc:
        AUDIT_FAILURES.labels("unavailable").inc()
        log.warning("Refusing a staff read: %s", exc)
        raise ProblemError(
            503,
            "Audit log unavailable",
            "Staff reads of a student's data are audited, and the audit log cannot be "
            "written right now; retry shortly.",
            type_=problem_type("audit-unavailable"),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
