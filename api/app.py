"""The query API's Starlette app: routes, error handling and the shared Redis client.

Serve it with uvicorn, e.g.
``uvicorn.Server(uvicorn.Config(create_app(settings), host=..., port=...)).serve()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.engagement import engagement
from api.metrics import RequestMetrics, metrics_endpoint
from api.openapi import DOCUMENT
from api.problems import EXCEPTION_HANDLERS
from api.readiness import readiness
from leap.settings import Settings

__all__ = ["REDIS_TIMEOUT", "create_app", "open_redis"]

# Short, so a dead Redis becomes a quick 503 rather than a hung widget.
REDIS_TIMEOUT = 1.0


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


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    """One Redis client per process, on ``app.state`` so tests can drive the lifespan too."""
    app.state.redis = open_redis(app.state.settings.redis_url)
    try:
        yield
    finally:
        await app.state.redis.aclose()


async def _health(request: Request) -> JSONResponse:
    """GET /healthz: the process is alive; deliberately checks nothing else."""
    return JSONResponse({"status": "ok"})


async def _openapi(request: Request) -> JSONResponse:
    return JSONResponse(DOCUMENT)


def create_app(settings: Settings) -> Starlette:
    """The ASGI app; Redis is opened by its lifespan, so building it does no I/O."""
    app = Starlette(
        routes=[
            Route("/v1/students/{student_id}/engagement", engagement, methods=["GET"]),
            Route("/healthz", _health, methods=["GET"]),
            Route("/readyz", readiness, methods=["GET"]),
            Route("/openapi.json", _openapi, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        middleware=[Middleware(RequestMetrics)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=_lifespan,
    )
    app.state.settings = settings
    return app
