"""The API's OpenAPI 3.1 document, written out by hand so it is the reviewed contract.

Served at ``/openapi.json``; a unit test keeps it in step with the app's routes.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from api.contact import MAX_BODY_BYTES
from api.engagement import LEVELS, MAX_WINDOW_DAYS
from api.history import DEFAULT_DAYS, MAX_SPAN_DAYS
from api.pages import STATIC
from api.params import COURSE_PATTERN, TUTOR_ID_PATTERN, YEAR_PATTERN
from api.problems import PROBLEM_MEDIA_TYPE, RETRY_AFTER_SECONDS
from api.tutees import TREND_DAYS
from schemas.ids import STUDENT_ID_PATTERN

__all__ = ["DOCUMENT"]


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: str, media_type: str = "application/json", example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": _ref("schemas", schema)}
    if example is not None:
        content["example"] = example
    return {media_type: content}


def _problem(description: str, *, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": _json("Problem", PROBLEM_MEDIA_TYPE),
    }
    if retry:
        response["headers"] = {"Retry-After": _ref("headers", "RetryAfter")}
    return response


_DATE = {"type": "string", "format": "date", "examples": ["2025-03-14"]}
_STUDENT_ID = {"type": "string", "pattern": STUDENT_ID_PATTERN.pattern, "examples": ["S1000001"]}
_LEVEL = {"type": "string", "enum": list(LEVELS)}
_LABEL = {"type": "string", "examples": ["High", "Good", "Partial", "Low", "Very Low"]}
_HOLIDAY: dict[str, Any] = {
    "type": "object",
    "description": "A holiday period of the institution.",
    "required": ["name", "start", "end"],
    "properties": {
        "name": {"type": "string", "examples": ["Spring vacation"]},
        "start": _DATE,
        "end": {**_DATE, "description": "The last day of the holiday (inclusive)."},
    },
}
_ENGAGEMENT: dict[str, Any] = {
    "student_id": _STUDENT_ID,
    "indicator": _LEVEL,
    "label": _LABEL,
    "score": {"type": "number"},
    "reference_score": {"type": "number", "description": "The cohort reference score."},
    "as_of": {**_DATE, "description": "The last closed local day the indicator covers."},
    "window_days": {"type": "integer", "minimum": 1, "maximum": MAX_WINDOW_DAYS},
    "policy_version": {"type": "string"},
    "course": {"type": "string"},
    "year": {"type": "integer"},
    "updated_at": {"type": "string", "format": "date-time"},
    "days": {
        "type": "array",
        "description": "Every day from as_of - window_days + 1 to as_of, oldest first; "
        "days without activity (or unreadable) have engagement 0 and no sources.",
        "items": _ref("schemas", "Day"),
    },
    "today_so_far": {
        "description": "The open day after as_of, if it has activity yet.",
        "oneOf": [_ref("schemas", "Day"), {"type": "null"}],
    },
    "stale": {
        "type": "boolean",
        "description": "True when as_of is older than the last local day that should have "
        "closed by now (its midnight plus the day-close grace, in the institution's time "
        "zone, has passed): the worker is behind or the store is catching up after an "
        "outage. Show the record as of its date, never as current.",
    },
    "contact_allowed": {
        "type": "boolean",
        "description": "False when the student has opted out of being contacted as a result "
        'of LEAP: staff pages show "do not contact".',
    },
    "holiday": {
        "description": "The holiday period as_of falls in, or null. Indicators are still "
        "computed in holidays; a quiet week then means little.",
        "oneOf": [_HOLIDAY, {"type": "null"}],
    },
}
_HISTORY_DAY: dict[str, Any] = {
    "as_of": _DATE,
    "indicator": _LEVEL,
    "label": _LABEL,
    "score": {"type": "number"},
    "reference_score": {"type": "number"},
    "window_days": {"type": "integer", "minimum": 1},
    "policy_version": {"type": "string"},
    "course": {"type": "string"},
    "year": {"type": "integer"},
    "breakdown": {
        "type": "object",
        "description": "What the score was worked out from: units per source over the "
        "window (before caps) and the days with any activity.",
        "properties": {
            "sources": {"type": "object", "additionalProperties": {"type": "number"}},
            "active_days": {"type": "integer", "minimum": 0},
        },
    },
}
_TUTEE: dict[str, Any] = {
    "student_id": _STUDENT_ID,
    "indicator": {"oneOf": [_LEVEL, {"type": "null"}], "description": "Null: not scored yet."},
    "label": {"oneOf": [_LABEL, {"type": "null"}]},
    "score": {"type": ["number", "null"]},
    "as_of": {"oneOf": [_DATE, {"type": "null"}]},
    "trend": {
        "type": ["integer", "null"],
        "minimum": -(len(LEVELS) - 1),
        "maximum": len(LEVELS) - 1,
        "description": f"Bands moved since the indicator of {TREND_DAYS} days before as_of "
        "(-2: two bands lower); null without history for that day.",
    },
    "course": {"type": "string", "description": "The tutee's course (for filtering)."},
    "year": {"type": "integer", "minimum": 1, "description": "The tutee's year of study."},
    "contact_allowed": {"type": "boolean"},
}
_COUNT = {"type": "integer", "minimum": 0}

_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string", "format": "uri-reference"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
        },
    },
    "NotReady": {
        "allOf": [
            _ref("schemas", "Problem"),
            {
                "type": "object",
                "required": ["checks"],
                "properties": {"checks": _ref("schemas", "Checks")},
            },
        ],
    },
    "Checks": {
        "type": "object",
        "description": 'Each dependency: "ok" or "error: <kind>".',
        "required": ["redis", "kafka"],
        "properties": {"redis": {"type": "string"}, "kafka": {"type": "string"}},
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "ok"}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {"status": {"const": "ready"}, "checks": _ref("schemas", "Checks")},
    },
    "Day": {
        "type": "object",
        "description": "One local day's activity.",
        "required": ["date", "engagement", "sources"],
        "properties": {
            "date": _DATE,
            "engagement": {"type": "number", "description": "Engagement points that day."},
            "sources": {
                "type": "object",
                "description": "Activity total per source (e.g. vle, library, attendance).",
                "additionalProperties": {"type": "number"},
            },
        },
    },
    "Engagement": {
        "type": "object",
        "description": "A student's indicator for the last closed day, with its window.",
        "required": list(_ENGAGEMENT),
        "properties": _ENGAGEMENT,
    },
    "History": {
        "type": "object",
        "description": "A student's indicator at the close of each day from since to until "
        "that has one, oldest first.",
        "required": ["student_id", "since", "until", "days"],
        "properties": {
            "student_id": _STUDENT_ID,
            "since": _DATE,
            "until": _DATE,
            "days": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": list(_HISTORY_DAY),
                    "properties": _HISTORY_DAY,
                },
            },
        },
    },
    "Tutees": {
        "type": "object",
        "description": "A tutor's tutees the caller may see: Very Low first, then by trend "
        "(steepest fall first); tutees with no indicator yet last.",
        "required": ["tutor_id", "tutees"],
        "properties": {
            "tutor_id": {"type": "string"},
            "tutees": {
                "type": "array",
                "items": {"type": "object", "required": list(_TUTEE), "properties": _TUTEE},
            },
        },
    },
    "Distribution": {
        "type": "object",
        "description": "How many of a cohort's students were at each level on its last banded day.",
        "required": [
            "course",
            "year",
            "as_of",
            "reference_score",
            "policy_version",
            "size",
            "counts",
            "stale",
        ],
        "properties": {
            "course": {"type": "string"},
            "year": {"type": "integer"},
            "as_of": _DATE,
            "reference_score": {"type": "number"},
            "policy_version": {"type": "string"},
            "size": {**_COUNT, "description": "Students banded (the counts' sum)."},
            "counts": {
                "type": "object",
                "required": list(LEVELS),
                "properties": dict.fromkeys(LEVELS, _COUNT),
            },
            "stale": {"type": "boolean", "description": "As in Engagement."},
        },
    },
    "ContactPreference": {
        "type": "object",
        "required": ["student_id", "contact_allowed"],
        "properties": {"student_id": _STUDENT_ID, "contact_allowed": {"type": "boolean"}},
    },
    "ContactPreferenceChange": {
        "type": "object",
        "required": ["contact_allowed"],
        "additionalProperties": False,
        "properties": {"contact_allowed": {"type": "boolean"}},
    },
    "ContactRecord": {
        "type": "object",
        "description": "The record published to the contact-preferences topic.",
        "required": ["student_id", "contact_allowed", "requested_by", "updated_at"],
        "properties": {
            "student_id": _STUDENT_ID,
            "contact_allowed": {"type": "boolean"},
            "requested_by": {"type": "string", "enum": ["student", "admin"]},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
}

_UNAUTHORIZED: dict[str, Any] = {
    **_problem("Missing, malformed, expired or untrusted bearer token."),
    "headers": {"WWW-Authenticate": _ref("headers", "WWWAuthenticate")},
}
_NOT_YOURS = (
    "unknown, not scored yet and not the caller's are one answer, so that it never "
    "confirms someone else's record exists."
)
_AUDITED = (
    " Staff (tutor, department, admin) requests are audited, allowed or not, before they "
    "are answered; if the audit row cannot be written the request is refused (503)."
)
_READERS = (
    "Readable by the student (token `sub`), their tutor (`sub` = their tutor id), their "
    "department (`department` claim) and admins."
)
_STUDENT_PATH = {"name": "student_id", "in": "path", "required": True, "schema": _STUDENT_ID}
_STORE_503 = _problem(
    "The indicator store, the identity provider's keys or the audit log (staff requests; "
    "without Retry-After when no audit log is configured) unavailable.",
    retry=True,
)


def _ok(description: str, schema: str, example: Any) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"Cache-Control": _ref("headers", "NoStore")},
        "content": _json(schema, example=example),
    }


def _operation(
    operation_id: str,
    summary: str,
    description: str,
    parameters: list[dict[str, Any]],
    responses: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """A bearer-protected operation; 401 and 500 are the same for all of them."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "security": [{"bearerAuth": []}],
        "parameters": parameters,
        **extra,
        "responses": {
            **responses,
            "401": _UNAUTHORIZED,
            "500": _problem("Unexpected error, or unreadable stored data."),
        },
    }


_ENGAGEMENT_EXAMPLE = {
    "student_id": "S1000001",
    "indicator": "partial",
    "label": "Partial",
    "score": 6.4,
    "reference_score": 11.9,
    "as_of": "2027-03-30",
    "window_days": 7,
    "policy_version": "stream-2026.1",
    "course": "BSC-MARBIO",
    "year": 1,
    "updated_at": "2027-03-31T02:00:04+00:00",
    "days": [
        {"date": f"2027-03-{d}", "engagement": e, "sources": s}
        for d, e, s in [
            ("24", 10.0, {"attendance": 1}),
            ("25", 0.0, {}),
            ("26", 12.5, {"attendance": 1, "moodle": 10}),
            ("27", 0.0, {}),
            ("28", 0.0, {}),
            ("29", 9.0, {"library": 1, "moodle": 30}),
            ("30", 13.3, {"lecture_capture": 13}),
        ]
    ],
    "today_so_far": {"date": "2027-03-31", "engagement": 2.5, "sources": {"moodle": 10}},
    "stale": False,
    "contact_allowed": True,
    "holiday": {"name": "Spring vacation", "start": "2027-03-27", "end": "2027-04-25"},
}

_PATHS: dict[str, Any] = {
    "/v1/students/{student_id}/engagement": {
        "get": _operation(
            "getEngagement",
            "A student's engagement indicator and daily activity.",
            _READERS + _AUDITED,
            [_STUDENT_PATH],
            {
                "200": _ok(
                    "The student's indicator (personal data: not cached).",
                    "Engagement",
                    _ENGAGEMENT_EXAMPLE,
                ),
                "400": _problem("Malformed student id."),
                "404": _problem(
                    f"No indicator for this student that the caller may see: {_NOT_YOURS}"
                ),
                "503": _STORE_503,
            },
        )
    },
    "/v1/students/{student_id}/history": {
        "get": _operation(
            "getHistory",
            "A student's daily indicators over a date range, for trends.",
            f"From LEAP's PostgreSQL history (kept for LEAP_HISTORY_RETENTION_DAYS). Days "
            f"without an indicator are absent. {_READERS}{_AUDITED}",
            [
                _STUDENT_PATH,
                {
                    "name": "since",
                    "in": "query",
                    "required": False,
                    "description": f"First day; default until - {DEFAULT_DAYS - 1} days.",
                    "schema": _DATE,
                },
                {
                    "name": "until",
                    "in": "query",
                    "required": False,
                    "description": "Last day; default the last day that should have closed.",
                    "schema": _DATE,
                },
            ],
            {
                "200": _ok(
                    "The history (personal data: not cached).",
                    "History",
                    {
                        "student_id": "S1000001",
                        "since": "2027-03-29",
                        "until": "2027-03-30",
                        "days": [
                            {
                                "as_of": "2027-03-30",
                                "indicator": "partial",
                                "label": "Partial",
                                "score": 6.4,
                                "reference_score": 11.9,
                                "window_days": 7,
                                "policy_version": "stream-2026.1",
                                "course": "BSC-MARBIO",
                                "year": 1,
                                "breakdown": {
                                    "sources": {"attendance": 2, "moodle": 40},
                                    "active_days": 4,
                                },
                            }
                        ],
                    },
                ),
                "400": _problem(
                    f"Malformed student id or date, an unknown or repeated query parameter, "
                    f"since after until, or a range of more than {MAX_SPAN_DAYS} days."
                ),
                "404": _problem(f"No student that the caller may see: {_NOT_YOURS}"),
                "503": _problem(
                    "History or audit log unavailable (with Retry-After) or not configured "
                    "(LEAP_POSTGRES_DSN unset; without); or the identity provider's keys "
                    "unavailable.",
                    retry=True,
                ),
            },
        )
    },
    "/v1/students/{student_id}/contact-preference": {
        "get": _operation(
            "getContactPreference",
            "Whether the student may be contacted as a result of LEAP.",
            _READERS + _AUDITED,
            [_STUDENT_PATH],
            {
                "200": _ok(
                    "The current preference (true unless the student opted out).",
                    "ContactPreference",
                    {"student_id": "S1000001", "contact_allowed": False},
                ),
                "400": _problem("Malformed student id."),
                "404": _problem(f"No student that the caller may see: {_NOT_YOURS}"),
                "503": _STORE_503,
            },
        ),
        "put": _operation(
            "putContactPreference",
            "Opt out of (or back into) being contacted as a result of LEAP.",
            "By the student themself, or an admin recording a request that arrived another "
            "way (tutors and departments get 404). Answered once Kafka has acknowledged the "
            "record on the contact-preferences topic; reads reflect it within seconds. "
            "Repeating a PUT is harmless." + _AUDITED,
            [_STUDENT_PATH],
            {
                "200": _ok(
                    "Recorded.",
                    "ContactRecord",
                    {
                        "student_id": "S1000001",
                        "contact_allowed": False,
                        "requested_by": "student",
                        "updated_at": "2027-03-31T09:12:44.120511+00:00",
                    },
                ),
                "400": _problem("Malformed student id, or a body that is not JSON."),
                "404": _problem(f"No student whose preference the caller may set: {_NOT_YOURS}"),
                "413": _problem(f"Body over {MAX_BODY_BYTES} bytes."),
                "422": _problem('JSON other than {"contact_allowed": true|false}.'),
                "503": _problem(
                    "Kafka did not acknowledge the record (retry), the audit log (admin "
                    "requests) or the identity provider's keys unavailable.",
                    retry=True,
                ),
            },
            requestBody={
                "required": True,
                "content": _json("ContactPreferenceChange", example={"contact_allowed": False}),
            },
        ),
    },
    "/v1/tutors/{tutor_id}/tutees": {
        "get": _operation(
            "getTutees",
            "A tutor's tutees, those most in need of a conversation first.",
            "For the tutor (`sub` = tutor_id), department staff (their department's tutees "
            "of this tutor) and admins. Every tutee listed gets an audit row (one statement, "
            "before anything is read); if they cannot be written the request is refused "
            "(503).",
            [
                {
                    "name": "tutor_id",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "pattern": TUTOR_ID_PATTERN.pattern,
                        "examples": ["T0001"],
                    },
                }
            ],
            {
                "200": _ok(
                    "The tutees (personal data: not cached).",
                    "Tutees",
                    {
                        "tutor_id": "T0001",
                        "tutees": [
                            {
                                "student_id": "S1000007",
                                "indicator": "very_low",
                                "label": "Very Low",
                                "score": 0.0,
                                "as_of": "2027-03-30",
                                "trend": -2,
                                "course": "BA-ENGLIT",
                                "year": 2,
                                "contact_allowed": True,
                            },
                            {
                                "student_id": "S1000001",
                                "indicator": "partial",
                                "label": "Partial",
                                "score": 6.4,
                                "as_of": "2027-03-30",
                                "trend": None,
                                "course": "BA-ENGLIT",
                                "year": 2,
                                "contact_allowed": False,
                            },
                        ],
                    },
                ),
                "400": _problem("Malformed tutor id."),
                "404": _problem(
                    "Not a list the caller may see: another tutor's, or no tutees of this "
                    "tutor in the caller's department (or at all)."
                ),
                "503": _problem(
                    "Indicator store, history, audit log or the identity provider's keys "
                    "unavailable (no Retry-After: no audit log configured).",
                    retry=True,
                ),
            },
        )
    },
    "/v1/cohorts/{course}/{year}/distribution": {
        "get": _operation(
            "getCohortDistribution",
            "How many students of a cohort (course and year) are at each level.",
            "Aggregates only (not audited). For the tutors of a student in the cohort, the "
            "departments with a student in it, and admins.",
            [
                {
                    "name": "course",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "pattern": COURSE_PATTERN.pattern,
                        "examples": ["BSC-MARBIO"],
                    },
                },
                {
                    "name": "year",
                    "in": "path",
                    "required": True,
                    "schema": {
                        "type": "string",
                        "pattern": YEAR_PATTERN.pattern,
                        "examples": ["1"],
                    },
                },
            ],
            {
                "200": _ok(
                    "The distribution.",
                    "Distribution",
                    {
                        "course": "BSC-MARBIO",
                        "year": 1,
                        "as_of": "2027-03-30",
                        "reference_score": 11.9,
                        "policy_version": "stream-2026.1",
                        "size": 120,
                        "counts": {
                            "high": 14,
                            "good": 41,
                            "partial": 38,
                            "low": 17,
                            "very_low": 10,
                        },
                        "stale": False,
                    },
                ),
                "400": _problem("Malformed course or year."),
                "404": _problem(
                    "No distribution of this cohort that the caller may see: out of scope, "
                    "not banded yet, or no student of the caller's in it."
                ),
                "503": _problem(
                    "Indicator store, or the identity provider's keys, unavailable.", retry=True
                ),
            },
        )
    },
}


def _static(path: str, media_type: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": "get"
            + "".join(
                part.capitalize() for part in path.replace(".", "-").replace("/", "-").split("-")
            ),
            "summary": "The staff page, or a script or style sheet of it or the portal widget "
            "(no token: they hold no data).",
            "security": [],
            "responses": {
                "200": {
                    "description": "The file.",
                    "content": {media_type: {"schema": {"type": "string"}}},
                }
            },
        }
    }


_STATIC_PATHS = {path: _static(path, asset.media_type) for path, asset in STATIC.items()}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "LEAP query API",
        "version": version("leap-engine"),
        "description": "Learner-engagement indicators for portal widgets and staff pages. "
        "Errors are RFC 9457 problem details (application/problem+json).",
    },
    "paths": {
        **_PATHS,
        "/healthz": {
            "get": {
                "operationId": "getHealth",
                "summary": "Liveness: the process is up (no dependencies checked).",
                "responses": {"200": {"description": "Alive.", "content": _json("Health")}},
            }
        },
        "/readyz": {
            "get": {
                "operationId": "getReadiness",
                "summary": "Readiness: Redis answers PING, a Kafka broker answers ApiVersions.",
                "responses": {
                    "200": {"description": "Ready.", "content": _json("Readiness")},
                    "503": {
                        "description": "A dependency is unavailable; checks names it.",
                        "headers": {"Retry-After": _ref("headers", "RetryAfter")},
                        "content": _json("NotReady", PROBLEM_MEDIA_TYPE),
                    },
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document.",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "summary": "Prometheus metrics: requests by route template, method and status.",
                "responses": {
                    "200": {
                        "description": "The Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        **_STATIC_PATHS,
    },
    "components": {
        "schemas": _SCHEMAS,
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A JWT from the identity provider: `iss`, `aud`, `exp`, `sub` "
                "and `role` (student, tutor, department or admin; department also needs "
                "`department`). Algorithms are pinned by the server.",
            }
        },
        "headers": {
            "WWWAuthenticate": {
                "description": 'RFC 6750 challenge, e.g. Bearer realm="leap", '
                'error="invalid_token".',
                "schema": {"type": "string", "pattern": "^Bearer "},
            },
            "RetryAfter": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "examples": [RETRY_AFTER_SECONDS]},
            },
            "NoStore": {"schema": {"const": "no-store"}},
        },
    },
}
