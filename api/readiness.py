"""Readiness: can this process serve data right now? Redis and the Kafka broker, probed at once.

Kafka is probed with a plain TCP connect: cheap, dependency-free, and enough to tell an
orchestrator the broker is up. Both probes are bounded so the whole check stays under ~2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.problems import RETRY_AFTER_SECONDS, ProblemError, problem_type

__all__ = ["CHECK_TIMEOUT", "KAFKA_DEFAULT_PORT", "check_kafka", "check_redis", "readiness"]

CHECK_TIMEOUT = 1.5  # seconds per check; they run concurrently
CONNECT_TIMEOUT = 1.0
KAFKA_DEFAULT_PORT = 9092

log = logging.getLogger(__name__)


def _reason(exc: BaseException) -> str:
    """Failure as shown to probes: the kind only, no hosts or messages."""
    return "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__


async def check_redis(redis: Redis) -> str:
    """``"ok"``, or ``"error: <kind>"`` if Redis does not answer PING in time."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("Readiness: Redis failed: %r", exc)
        return f"error: {_reason(exc)}"
    return "ok"


def _address(server: str) -> tuple[str, int]:
    """host:port, [v6]:port, or a bare host on Kafka's default port."""
    if server.startswith("["):
        host, _, port = server[1:].partition("]")
        return host, int(port.removeprefix(":") or KAFKA_DEFAULT_PORT)
    host, sep, port = server.rpartition(":")
    if not sep or ":" in host:
        return server, KAFKA_DEFAULT_PORT
    return host, int(port)


async def _connect(server: str) -> None:
    host, port = _address(server)
    async with asyncio.timeout(CONNECT_TIMEOUT):
        _, writer = await asyncio.open_connection(host, port)
    writer.close()
    with contextlib.suppress(OSError):  # the broker answered; how it hangs up is irrelevant
        await writer.wait_closed()


async def check_kafka(servers: Sequence[str]) -> str:
    """``"ok"`` if any bootstrap server accepts a TCP connection, as a client needs no more."""
    if not servers:
        return "error: no bootstrap servers configured"
    results = await asyncio.gather(*(_connect(s) for s in servers), return_exceptions=True)
    failures = [r for r in results if isinstance(r, Exception)]
    if len(failures) < len(results):
        return "ok"
    for server, exc in zip(servers, failures, strict=True):
        log.warning("Readiness: Kafka broker %s failed: %r", server, exc)
    return f"error: no bootstrap server reachable ({_reason(failures[0])})"


async def readiness(request: Request) -> JSONResponse:
    """GET /readyz: 200 when every dependency answers, else 503 naming the failing ones."""
    redis_state, kafka_state = await asyncio.gather(
        check_redis(request.app.state.redis),
        check_kafka(request.app.state.settings.bootstrap_servers),
    )
    checks = {"redis": redis_state, "kafka": kafka_state}
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        raise ProblemError(
            503,
            "Not ready",
            f"Unavailable: {', '.join(failing)}.",
            type_=problem_type("not-ready"),
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            extensions={"checks": checks},
        )
    body = {"status": "ready", "checks": checks}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
