"""The query API's Starlette app: routes, error handling and the shared clients.

Serve it with uvicorn, e.g.
``uvicorn.Server(uvicorn.Config(create_app(settings), host=..., port=...)).serve()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.access import Roster
from api.auth import Verifier
from api.closable import ClosableDay
from api.cohorts import distribution
from api.contact import contact_preference
from api.database import Database
from api.engagement import engagement
from api.history import history
from api.metrics import RequestMetrics, metrics_endpoint
from api.openapi import DOCUMENT
from api.pages import page_routes
from api.preference_publisher import PreferencePublisher
from api.problems import EXCEPTION_HANDLERS
from api.readiness import readiness
from api.state_reads import StateReads
from api.tutees import tutees
from leap.compacted import CompactedTopic
from leap.contact import ContactPreferences
from leap.gc_settings import serving_gc
from leap.institution import load_institution
from leap.policy import load_policy
from leap.reference_data import load_reference_data
from leap.roster import Roster as FollowedRoster
from leap.settings import Settings

__all__ = ["FOLLOWER_RESTART_SECONDS", "REDIS_TIMEOUT", "create_app", "open_redis"]

# Short, so a dead Redis becomes a quick 503 rather than a hung widget.
REDIS_TIMEOUT = 1.0
#: A follower that failed (e.g. Kafka gone for long) starts again after this long.
FOLLOWER_RESTART_SECONDS = 5.0

log = logging.getLogger(__name__)


def open_redis(url: str) -> Redis:
    """A pooled client; one immediate retry hides a connection dropped by a Redis restart.

    Timeouts are not retried: a hung Redis should cost a widget one timeout, not two.
    """
    return Redis.from_url(
        url,
        socket_connect_timeout=REDIS_TIMEOUT,
        socket_timeout=REDIS_TIMEOUT,
        retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
    )


async def _follow(follower: CompactedTopic) -> None:
    """Keep applying a reference topic for the process's life; a failure restarts it from
    where ``load`` ended (re-applying a compacted topic's records ends in the same state),
    so an opt-out is never dropped for good by one broken connection."""
    while True:
        try:
            await follower.follow()
        except Exception:
            log.exception("following %s failed; restarting it", follower.topic)
        await asyncio.sleep(FOLLOWER_RESTART_SECONDS)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _reference_data(app: Starlette, stack: AsyncExitStack) -> None:
    """The roster and contact preferences: followed from their topics (or the roster from
    ``LEAP_STUDENTS``), unless a test handed a roster in."""
    settings: Settings = app.state.settings
    given_roster, given_preferences = app.state.given
    if given_roster is not None:
        app.state.roster = given_roster
        app.state.preferences = given_preferences or ContactPreferences()
        return
    roster = FollowedRoster(
        app.state.institution, load_policy(settings.policy), settings.partitions
    )
    preferences = ContactPreferences()
    followers = await load_reference_data(settings, roster, preferences)
    tasks = [asyncio.create_task(_follow(f), name=f"follow {f.topic}") for f in followers]
    stack.push_async_callback(_stop, tasks)
    app.state.roster, app.state.preferences = roster, preferences


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    """Clients on ``app.state``, so tests can drive the lifespan too.

    The token verifier and the reference data come first: with no way to check a token, or
    to tell whose tutee a student is, the API must not start at all. PostgreSQL (audit,
    history) and the preference producer may be down at start: they are retried when a
    request needs them, and students' own reads need neither.
    """
    settings: Settings = app.state.settings
    app.state.verifier = Verifier.from_settings(settings)
    app.state.institution = load_institution(settings.institution)
    async with AsyncExitStack() as stack:
        await _reference_data(app, stack)
        app.state.redis = open_redis(settings.redis_url)
        stack.push_async_callback(app.state.redis.aclose)
        app.state.state_reads = StateReads(app.state.redis, settings.redis_prefix)
        app.state.closable_day = ClosableDay(settings.zone, settings.day_close_grace)
        app.state.database = Database(settings.postgres_dsn)
        stack.push_async_callback(app.state.database.close)
        await app.state.database.open()
        app.state.publisher = PreferencePublisher(settings)
        stack.push_async_callback(app.state.publisher.close)
        stack.enter_context(serving_gc())
        yield


async def _health(request: Request) -> JSONResponse:
    """GET /healthz: the process is alive; deliberately checks nothing else."""
    return JSONResponse({"status": "ok"})


async def _openapi(request: Request) -> JSONResponse:
    return JSONResponse(DOCUMENT)


def _cors(settings: Settings) -> list[Middleware]:
    """Let the configured portals' pages call the API (bearer tokens, so no cookies)."""
    if not settings.api_cors_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["GET", "PUT"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    ]


def create_app(
    settings: Settings,
    roster: Roster | None = None,
    preferences: ContactPreferences | None = None,
) -> Starlette:
    """The ASGI app; its lifespan opens its clients and loads keys, so building it does no I/O.

    By default the roster (students in scope) and contact preferences are loaded at start
    and followed while running (``leap.reference_data``). Tests may hand in a ``roster``
    (and ``preferences``, else nobody has opted out): then nothing is read from Kafka.
    """
    app = Starlette(
        routes=[
            Route("/v1/students/{student_id}/engagement", engagement, methods=["GET"]),
            Route("/v1/students/{student_id}/history", history, methods=["GET"]),
            Route(
                "/v1/students/{student_id}/contact-preference",
                contact_preference,
                methods=["GET", "PUT"],
            ),
            Route("/v1/tutors/{tutor_id}/tutees", tutees, methods=["GET"]),
            Route("/v1/cohorts/{course}/{year}/distribution", distribution, methods=["GET"]),
            Route("/healthz", _health, methods=["GET"]),
            Route("/readyz", readiness, methods=["GET"]),
            Route("/openapi.json", _openapi, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            *page_routes(),
        ],
        middleware=[Middleware(RequestMetrics), *_cors(settings)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.given = (roster, preferences)
    return app
