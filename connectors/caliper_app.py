"""``POST /caliper``: the Caliper endpoint; a 200 means the events are durable in Kafka.

Sensors authenticate with a bearer token each (a tokens file of ``name:token`` lines).
The whole envelope is validated before anything is published, so a 400 publishes
nothing; otherwise the response waits for the broker's acknowledgement (acks=all). One
publisher is held open for the app's lifetime. Event ids already acknowledged by this
process are not sent again (a small LRU); after a restart, the deterministic event ids let
the worker's de-duplication absorb a sensor's retries.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from api.problems import EXCEPTION_HANDLERS, problem_response, problem_type
from connectors.caliper import CaliperError, Ignored, parse_envelope, to_activity
from connectors.identity import IdentityMap
from connectors.metrics import READ, REJECTED, metrics_endpoint
from connectors.publisher import ActivityPublisher, Rejected
from leap.settings import Settings
from schemas.codec import SchemaRegistryError
from streams.topics import ensure_topics

__all__ = ["MAX_BODY_BYTES", "METRICS_CONNECTOR", "TokenError", "create_caliper_app", "load_tokens"]

#: Largest envelope accepted: MAX_EVENTS events of a few KB each.
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Acknowledged event ids remembered, to answer a sensor's retry without re-publishing.
SEEN_EVENTS = 100_000
RETRY_AFTER_SECONDS = 10
#: The ``connector`` label of this app's leap_connector_* metrics.
METRICS_CONNECTOR = "caliper"

log = logging.getLogger(__name__)


class TokenError(ValueError):
    """The tokens file cannot be used (a bad line, an empty or a repeated name)."""


def load_tokens(path: Path) -> dict[str, str]:
    """``name:token`` per line (blank lines and ``#`` comments skipped) -> {name: token}."""
    tokens: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, token = (part.strip() for part in line.partition(":"))
        if not name or not token:
            raise TokenError(f"{path}:{number}: expected name:token")
        if name in tokens:
            raise TokenError(f"{path}:{number}: sensor {name!r} appears twice")
        tokens[name] = token
    if not tokens:
        raise TokenError(f"{path}: no tokens: no sensor could post")
    return tokens


def create_caliper_app(
    settings: Settings, identities: IdentityMap, tokens: Mapping[str, str]
) -> Starlette:
    """The Starlette app; its lifespan creates missing topics and opens the publisher."""
    seen: OrderedDict[str, None] = OrderedDict()
    state: dict[str, ActivityPublisher] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await ensure_topics(settings)
        async with ActivityPublisher(settings, connector=METRICS_CONNECTOR) as publisher:
            state["publisher"] = publisher
            yield
            state.clear()

    async def receive(request: Request) -> Response:
        sensor = _sensor(request, tokens)
        if sensor is None:
            return problem_response(
                401,
                detail="A valid bearer token for this sensor is required.",
                headers={"WWW-Authenticate": 'Bearer realm="caliper"'},
            )
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            return problem_response(415, detail="Send the envelope as application/json.")
        body = await _body(request)
        if body is None:
            return problem_response(413, detail=f"Envelopes are limited to {MAX_BODY_BYTES} bytes.")
        try:
            events = parse_envelope(json.loads(body))
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            reasons = exc.reasons if isinstance(exc, CaliperError) else ["body: not valid JSON"]
            REJECTED.labels(METRICS_CONNECTOR, "invalid_envelope").inc()
            return problem_response(
                400,
                "Invalid Caliper envelope",
                "Nothing was published; correct these and send the envelope again.",
                type_=problem_type("invalid-caliper-envelope"),
                extensions={"errors": reasons},
            )

        READ.labels(METRICS_CONNECTOR).inc(len(events))
        received_at = datetime.now(UTC)
        counts: Counter[str] = Counter()
        fresh: set[str] = set()
        items: list[dict[str, Any] | Rejected] = []
        for event in events:
            event_id = str(event["id"]).lower()
            if event_id in seen or event_id in fresh:
                counts["duplicate"] += 1
                continue
            mapped = to_activity(event, identities, received_at, f"caliper:{sensor}:{event_id}")
            if isinstance(mapped, Ignored):
                counts[mapped.reason] += 1
                continue
            counts["published" if isinstance(mapped, dict) else mapped.reason] += 1
            fresh.add(event_id)
            items.append(mapped)
        try:
            await state["publisher"].publish(items)
        except (KafkaError, OSError, TimeoutError, SchemaRegistryError) as exc:
            log.warning("Caliper events from %s not acknowledged: %r", sensor, exc)
            return problem_response(
                503,
                "Broker unavailable",
                "The events were not stored; send the envelope again shortly.",
                type_=problem_type("broker-unavailable"),
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        for event_id in fresh:
            seen[event_id] = None
        while len(seen) > SEEN_EVENTS:
            seen.popitem(last=False)
        summary = {"received": len(events), "published": 0, "duplicate": 0, "ignored_event": 0}
        return JSONResponse({**summary, **counts})

    return Starlette(
        routes=[
            Route("/caliper", receive, methods=["POST"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )


def _sensor(request: Request, tokens: Mapping[str, str]) -> str | None:
    """The name of the sensor whose token was presented; every token is compared."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return None
    given = presented.strip().encode()
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(given, token.encode()):
            found = name
    return found


async def _body(request: Request) -> bytes | None:
    """The body, or None once it exceeds MAX_BODY_BYTES (not read any further)."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                return None
            chunks.append(chunk)
    except ClientDisconnect:
        return b""
    return b"".join(chunks)
