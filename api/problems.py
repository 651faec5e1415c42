"""RFC 9457 problem responses, and the exception handlers that make every error one.

Clients (portal widgets, staff pages) get one error shape whatever failed: a routing miss,
a bad id, Redis being down or a bug. Bodies never carry stack traces or stored data.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from redis.exceptions import RedisError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_MEDIA_TYPE",
    "RETRY_AFTER_SECONDS",
    "ProblemError",
    "problem_response",
    "problem_type",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5

log = logging.getLogger(__name__)


def problem_type(slug: str) -> str:
    """The ``type`` URI of a LEAP-specific problem (generic HTTP errors use about:blank)."""
    return f"urn:leap:problem:{slug}"


def problem_response(
    status: int,
    title: str | None = None,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json response; never cached, since errors are transient or personal."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extensions or {})
    return JSONResponse(
        body,
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        media_type=PROBLEM_MEDIA_TYPE,
    )


class ProblemError(Exception):
    """Raised by endpoints to answer with a problem instead of threading responses back.

    Takes exactly :func:`problem_response`'s arguments and builds the response at once."""

    def __init__(
        self, status: int, title: str | None = None, detail: str | None = None, **options: Any
    ) -> None:
        super().__init__(detail or title or HTTPStatus(status).phrase)
        self.response = problem_response(status, title, detail, **options)


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return exc.response


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route) and 405 (wrong method), kept with their headers."""
    assert isinstance(exc, HTTPException)
    details = {
        404: "There is no resource at this path.",
        405: f"This resource does not support {request.method}.",
    }
    status = exc.status_code
    return problem_response(status, detail=details.get(status), headers=exc.headers)


async def _on_redis_error(request: Request, exc: Exception) -> Response:
    """Redis down or slow: say so and when to retry, rather than serve stale or partial data."""
    log.warning("Redis unavailable for %s %s: %r", request.method, request.url.path, exc)
    return problem_response(
        503,
        "Indicator store unavailable",
        "Indicator state cannot be read right now; retry shortly.",
        type_=problem_type("store-unavailable"),
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    """A bug: log it with its traceback here, tell the client nothing about internals."""
    log.error("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, detail="An unexpected error occurred; it has been logged.")


EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {
    ProblemError: _on_problem,
    HTTPException: _on_http_exception,
    RedisError: _on_redis_error,
    Exception: _on_unexpected,
}
