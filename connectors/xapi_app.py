"""The xAPI statements resource (an LRS's write side) as a Starlette app.

A 200 (POST) or 204 (PUT) means the events are durable: the response waits for the
broker's acknowledgement. A request is validated whole before anything is published, so
a 400 means nothing of it went in. A statement id seen recently is not published again
(an in-process LRU); across restarts the worker's event-id dedupe covers it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from aiokafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import EXCEPTION_HANDLERS, ProblemError, problem_response, problem_type
from connectors.identity import IdentityMap
from connectors.metrics import READ, REJECTED, metrics_endpoint
from connectors.publisher import ActivityPublisher, Rejected
from connectors.xapi import Ignored, StatementError, map_statement, validate_statement
from leap.settings import Settings
from streams.topics import ensure_topics

__all__ = ["METRICS_CONNECTOR", "XAPI_VERSION", "create_xapi_app", "load_credentials"]

XAPI_VERSION = "1.0.3"
#: The ``connector`` label of this app's leap_connector_* metrics.
METRICS_CONNECTOR = "xapi"
#: Statement ids remembered per process, so a client's retry is not published twice.
RECENT_IDS = 100_000
MAX_BODY_BYTES = 10 * 1024 * 1024

log = logging.getLogger(__name__)


def load_credentials(path: Path) -> dict[str, str]:
    """``name:password`` lines, one per feeding system; blank lines and ``#`` comments skipped."""
    credentials: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip() or not password:
            raise ValueError(f"{path}:{number}: expected name:password")
        credentials[name.strip()] = password
    return credentials


class _RecentIds:
    """A bounded LRU set of statement ids."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, statement_id: object) -> bool:
        return statement_id in self._ids

    def add(self, statement_id: str) -> None:
        self._ids[statement_id] = None
        self._ids.move_to_end(statement_id)
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)


class _VersionHeader:
    """Every response says which xAPI version this LRS speaks, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append(
                    (b"x-experience-api-version", XAPI_VERSION.encode())
                )
            await send(message)

        await self.app(scope, receive, send_with_version)


def create_xapi_app(
    settings: Settings, identities: IdentityMap, credentials: Mapping[str, str]
) -> Starlette:
    """The ASGI app; topics and the producer are opened by its lifespan."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await ensure_topics(settings)
        async with ActivityPublisher(settings, connector=METRICS_CONNECTOR) as publisher:
            app.state.publisher = publisher
            yield

    app = Starlette(
        routes=[
            Route("/xAPI/statements", _post, methods=["POST"]),
            Route("/xAPI/statements", _put, methods=["PUT"]),
            Route("/xAPI/about", _about, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        middleware=[Middleware(_VersionHeader)],
        exception_handlers={KafkaError: _on_kafka_error, **EXCEPTION_HANDLERS},
        lifespan=lifespan,
    )
    app.state.identities = identities
    app.state.credentials = dict(credentials)
    app.state.recent = _RecentIds(RECENT_IDS)
    app.state.counts = Counter[str]()
    return app


async def _about(request: Request) -> JSONResponse:
    return JSONResponse({"version": [XAPI_VERSION]})


async def _post(request: Request) -> JSONResponse:
    """POST /xAPI/statements: one statement or an array; answers with their ids."""
    system = _authenticate(request)
    _check_version(request)
    body = await _json_body(request)
    statements = _validate(body if isinstance(body, list) else [body])
    await _store(request, statements, system)
    return JSONResponse([s["id"] for s in statements])


async def _put(request: Request) -> Response:
    """PUT /xAPI/statements?statementId=ID: one statement whose id is given in the URL."""
    system = _authenticate(request)
    _check_version(request)
    body = await _json_body(request)
    try:
        url_id = str(UUID(request.query_params["statementId"]))
    except (KeyError, ValueError):
        raise _bad_request("statementId query parameter must be a UUID") from None
    if not isinstance(body, dict):
        raise _bad_request("PUT takes exactly one statement object")
    statement = _validate([{"id": url_id, **body}])[0]
    if statement["id"] != url_id:
        raise _bad_request("the statement's id differs from statementId")
    await _store(request, [statement], system)
    return Response(status_code=204)


def _authenticate(request: Request) -> str:
    """The feeding system's name from HTTP Basic credentials, or a 401."""
    credentials: dict[str, str] = request.app.state.credentials
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    name = password = ""
    if scheme.lower() == "basic":
        try:
            name, _, password = base64.b64decode(token, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name = password = ""
    expected = credentials.get(name)
    # Compare even for unknown names, so timing does not reveal which names exist.
    matches = hmac.compare_digest(password.encode(), (expected or "\0").encode())
    if expected is None or not matches:
        raise ProblemError(
            401,
            detail="HTTP Basic credentials of a feeding system are required.",
            headers={"WWW-Authenticate": 'Basic realm="xAPI"'},
        )
    return name


def _check_version(request: Request) -> None:
    version = request.headers.get("x-experience-api-version", "")
    if not version.startswith("1.0.") and version != "1.0":
        raise _bad_request("X-Experience-API-Version 1.0.x is required")


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ProblemError(413, detail=f"at most {MAX_BODY_BYTES} bytes per request")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _bad_request("the body is not JSON") from None


def _validate(objects: list[Any]) -> list[dict[str, Any]]:
    """Every statement, or a 400 naming the first bad one: nothing is stored then."""
    stored = datetime.now(UTC)
    READ.labels(METRICS_CONNECTOR).inc(len(objects))
    statements = []
    try:
        for index, obj in enumerate(objects):
            try:
                statements.append(validate_statement(obj, stored))
            except StatementError as exc:
                raise _bad_request(f"statement {index}: {exc}") from None
        ids = [s["id"] for s in statements]
        if len(set(ids)) != len(ids):
            raise _bad_request("a batch may not hold two statements with the same id")
    except ProblemError:
        REJECTED.labels(METRICS_CONNECTOR, "invalid_request").inc(len(objects))
        raise
    return statements


async def _store(request: Request, statements: list[dict[str, Any]], system: str) -> None:
    """Publish the statements not seen recently; returns once the broker acknowledged."""
    state = request.app.state
    received = datetime.now(UTC)
    fresh = [s for s in statements if s["id"] not in state.recent]
    outcomes = Counter({"duplicate": len(statements) - len(fresh)})
    items: list[dict[str, Any] | Rejected] = []
    for statement in fresh:
        outcome = map_statement(statement, state.identities, system, received)
        if isinstance(outcome, Ignored | Rejected):
            outcomes[outcome.reason] += 1
        else:
            outcomes["published"] += 1
        if not isinstance(outcome, Ignored):
            items.append(outcome)
    await state.publisher.publish(items)
    for statement in fresh:
        state.recent.add(statement["id"])
    state.counts.update(outcomes)


def _bad_request(detail: str) -> ProblemError:
    return ProblemError(400, "Bad statement request", detail, type_=problem_type("bad-xapi"))


async def _on_kafka_error(request: Request, exc: Exception) -> Response:
    """The broker did not acknowledge: nothing is promised, so the client must retry."""
    log.warning("xAPI statements not acknowledged by Kafka: %r", exc)
    return problem_response(
        503,
        "Event log unavailable",
        "The statements were not stored; retry shortly.",
        type_=problem_type("broker-unavailable"),
        headers={"Retry-After": "5"},
    )
