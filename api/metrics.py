"""The API's Prometheus metrics, and the ASGI middleware that records them.

Requests are labelled by route *template* (``/v1/students/{student_id}/engagement``), never
by the path itself, so a student id never becomes a label; paths no route matches are
``unmatched``.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "AUDIT_FAILURES",
    "AUTH_FAILURES",
    "REQUESTS",
    "REQUEST_SECONDS",
    "RequestMetrics",
    "metrics_endpoint",
]

REQUESTS = Counter(
    "leap_api_requests_total",
    "HTTP requests answered, by route template.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "leap_api_request_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
#: Refused requests by reason (``api.auth.REASONS``): a rise in ``forbidden`` or
#: ``bad_signature`` is someone probing, one in ``expired`` a client not refreshing.
AUTH_FAILURES = Counter(
    "leap_api_auth_failures_total",
    "API requests refused by authentication or authorisation, by reason.",
    ["reason"],
)
#: Staff reads refused because their audit row could not be written (``unconfigured``: no
#: LEAP_POSTGRES_DSN; ``unavailable``: PostgreSQL down or refusing the insert).
AUDIT_FAILURES = Counter(
    "leap_api_audit_failures_total",
    "Staff reads refused because the audit row could not be written, by reason.",
    ["reason"],
)
for _reason in ("unconfigured", "unavailable"):  # exported from the start, for rate()
    AUDIT_FAILURES.labels(_reason)
UNMATCHED = "unmatched"


class RequestMetrics:
    """Counts and times every HTTP request by route template, method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The labelled series each request updates, looked up once: ``labels()`` validates
        # and locks on every call. Bounded: route templates x methods x status codes.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped to the server

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "other"
            series = self._series.get((route, method, status))
            if series is None:
                series = REQUESTS.labels(route, method, str(status)), REQUEST_SECONDS.labels(route)
                self._series[route, method, status] = series
            series[0].inc()
            series[1].observe(time.perf_counter() - started)


#: Methods kept as labels; anything else a client invents is "other" (bounded labels).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics: this process's metrics in the Prometheus text exposition format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
