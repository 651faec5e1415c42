"""Readiness: can this process serve data right now? Redis and the Kafka broker, probed at once.

Kafka is probed with a real protocol exchange (an ApiVersions v0 request), not a TCP connect:
a proxy, load balancer or any other listener on the port accepts connections too, so only an
answer in Kafka's wire format shows a broker is there. The request is written by hand over
asyncio streams rather than with aiokafka's client, which logs every failed bootstrap at ERROR
and would flood the log on each probe while a broker is down. Both probes are bounded so the
whole check stays under ~2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from api.problems import RETRY_AFTER_SECONDS, ProblemError, problem_type

__all__ = ["CHECK_TIMEOUT", "KAFKA_DEFAULT_PORT", "check_kafka", "check_redis", "readiness"]

CHECK_TIMEOUT = 1.5  # seconds per check; they run concurrently
KAFKA_DEFAULT_PORT = 9092

_API_VERSIONS = 18  # Kafka API keys
_METADATA = 3
_CLIENT_ID = b"leap-readyz"
# A real ApiVersions v0 response is a few hundred bytes; anything far larger is not Kafka
# (an HTTP reply's "HTTP" read as a length is ~1.2 GB), so reject it before reading it.
_MAX_RESPONSE = 64 * 1024

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


class NotKafkaError(Exception):
    """Something answered on the bootstrap port, but not in Kafka's protocol."""


def _api_versions_request(correlation_id: int) -> bytes:
    """ApiVersions v0: request header v1 (key, version, correlation id, client id), no body."""
    header = struct.pack(">hhih", _API_VERSIONS, 0, correlation_id, len(_CLIENT_ID)) + _CLIENT_ID
    return struct.pack(">i", len(header)) + header


def _check_api_versions(payload: bytes, correlation_id: int) -> None:
    """Accept only a well-formed, error-free v0 response to our request from a broker.

    The API list must include Metadata: a KRaft controller's listener also speaks ApiVersions,
    but clients cannot bootstrap from it.
    """
    if len(payload) < 10:
        raise NotKafkaError("short ApiVersions response")
    got_id, error_code, count = struct.unpack_from(">ihi", payload)
    if got_id != correlation_id:
        raise NotKafkaError("ApiVersions response to another request")
    if error_code != 0:
        raise NotKafkaError(f"ApiVersions error code {error_code}")
    if not 0 < count <= (len(payload) - 10) // 6:
        raise NotKafkaError("malformed ApiVersions response")
    keys = {struct.unpack_from(">h", payload, 10 + 6 * i)[0] for i in range(count)}
    if _METADATA not in keys:
        raise NotKafkaError("listener does not serve Metadata (not a broker)")


async def _handshake(server: str) -> None:
    """One ApiVersions round trip with ``server``, bounded by ``CHECK_TIMEOUT`` in all."""
    host, port = _address(server)
    correlation_id = random.randrange(1, 2**31)
    async with asyncio.timeout(CHECK_TIMEOUT):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(_api_versions_request(correlation_id))
            await writer.drain()
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            if not 0 < size <= _MAX_RESPONSE:
                raise NotKafkaError(f"implausible response length {size}")
            _check_api_versions(await reader.readexactly(size), correlation_id)
        finally:
            writer.close()
            with contextlib.suppress(OSError):  # how the peer hangs up is irrelevant
                await writer.wait_closed()


async def _probe(server: str) -> tuple[str, Exception | None]:
    """``server`` with why its handshake failed, or ``None`` if it is a broker."""
    try:
        await _handshake(server)
    except (OSError, EOFError, TimeoutError, NotKafkaError, ValueError) as exc:
        return server, exc
    return server, None


async def check_kafka(servers: Sequence[str]) -> str:
    """``"ok"`` as soon as any bootstrap server answers ApiVersions, as a client needs no more.

    Servers are probed concurrently and the first good answer cancels the rest, so a dead
    server in the list does not slow a healthy check down.
    """
    if not servers:
        return "error: no bootstrap servers configured"
    tasks = [asyncio.ensure_future(_probe(s)) for s in servers]
    failures: list[tuple[str, Exception]] = []
    try:
        for finished in asyncio.as_completed(tasks):
            server, exc = await finished
            if exc is None:
                return "ok"
            failures.append((server, exc))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # no probe outlives the request
    for server, exc in failures:
        log.warning("Readiness: Kafka broker %s failed: %r", server, exc)
    return f"error: no Kafka broker answered ({_reason(failures[0][1])})"


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
