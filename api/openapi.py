"""The API's OpenAPI 3.1 document, written out by hand so it is the reviewed contract.

Served at ``/openapi.json``; a unit test keeps it in step with the app's routes.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from api.engagement import LEVELS, MAX_WINDOW_DAYS
from api.problems import PROBLEM_MEDIA_TYPE, RETRY_AFTER_SECONDS
from schemas.ids import STUDENT_ID_PATTERN

__all__ = ["DOCUMENT"]


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: str, media_type: str = "application/json") -> dict[str, Any]:
    return {media_type: {"schema": _ref("schemas", schema)}}


def _problem(description: str, *, retry: bool = False) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": _json("Problem", PROBLEM_MEDIA_TYPE),
    }
    if retry:
        response["headers"] = {"Retry-After": _ref("headers", "RetryAfter")}
    return response


_DATE = {"type": "string", "format": "date", "examples": ["2025-03-14"]}
_ENGAGEMENT: dict[str, Any] = {
    "student_id": {"type": "string", "pattern": STUDENT_ID_PATTERN.pattern},
    "indicator": {"type": "string", "enum": list(LEVELS)},
    "label": {"type": "string", "examples": ["High", "Good", "Partial", "Low", "Very Low"]},
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
}

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
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "LEAP query API",
        "version": version("leap-engine"),
        "description": "Read-only learner-engagement indicators for portal widgets and staff "
        "pages. Errors are RFC 9457 problem details (application/problem+json).",
    },
    "paths": {
        "/v1/students/{student_id}/engagement": {
            "get": {
                "operationId": "getEngagement",
                "summary": "A student's engagement indicator and daily activity.",
                "parameters": [
                    {
                        "name": "student_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": STUDENT_ID_PATTERN.pattern},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The student's indicator (personal data: not cached).",
                        "headers": {"Cache-Control": _ref("headers", "NoStore")},
                        "content": _json("Engagement"),
                    },
                    "400": _problem("Malformed student id."),
                    "404": _problem("No indicator yet for this student id."),
                    "500": _problem("Unexpected error, or an unreadable stored indicator."),
                    "503": _problem("Indicator store unavailable.", retry=True),
                },
            }
        },
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
    },
    "components": {
        "schemas": _SCHEMAS,
        "headers": {
            "RetryAfter": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "examples": [RETRY_AFTER_SECONDS]},
            },
            "NoStore": {"schema": {"const": "no-store"}},
        },
    },
}
