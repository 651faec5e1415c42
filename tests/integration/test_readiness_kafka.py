"""/readyz's Kafka check is a real protocol handshake, not a TCP connect.

A transparent proxy, load balancer or any stray listener accepts TCP connections, so these
tests pit the check against listeners that accept but are not Kafka, and against the session's
real Apache Kafka broker.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from api.readiness import CHECK_TIMEOUT, check_kafka
from leap.brokers import free_port
from leap.settings import Settings
from tests.integration.api_client import serve

pytestmark = pytest.mark.integration

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def listener(handler: Handler) -> AsyncIterator[str]:
    """A loopback TCP server running ``handler`` per connection; yields its host:port."""

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the probe hung up first
        finally:
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then close without a word."""


async def http_reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What the transparent proxy on an unroutable address answers."""
    await reader.read(1024)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")
    await writer.drain()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send the request's own frame back: well-framed, but not a response."""
    writer.write(await reader.read(1024))
    await writer.drain()


async def stale_response(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A well-formed ApiVersions v0 response, but to some other request."""
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    request = await reader.readexactly(size)
    (correlation_id,) = struct.unpack_from(">i", request, 4)
    body = struct.pack(">ihi", correlation_id + 1, 0, 2) + struct.pack(
        ">hhhhhh", 3, 0, 12, 18, 0, 4
    )
    writer.write(struct.pack(">i", len(body)) + body)
    await writer.drain()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and read, never answer, until the probe gives up and hangs up."""
    await reader.read()


async def readyz(redis_url: str, redis_prefix: str, bootstrap: str) -> tuple[httpx.Response, float]:
    """GET /readyz with ``bootstrap`` as the Kafka bootstrap; the response and its latency."""
    settings = Settings(redis_url=redis_url, redis_prefix=redis_prefix, kafka_bootstrap=bootstrap)
    loop = asyncio.get_running_loop()
    async with serve(settings) as client:
        started = loop.time()
        response = await client.get("/readyz")
        return response, loop.time() - started


def not_ready(response: httpx.Response) -> dict[str, str]:
    """The checks of a 503 problem; Redis must be fine, so Kafka alone is to blame."""
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    checks = response.json()["checks"]
    assert checks["redis"] == "ok"
    assert checks["kafka"].startswith("error: ")
    return checks


async def test_ready_against_real_kafka(
    kafka_bootstrap: str, redis_url: str, redis_prefix: str
) -> None:
    response, elapsed = await readyz(redis_url, redis_prefix, kafka_bootstrap)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"status": "ready", "checks": {"redis": "ok", "kafka": "ok"}}
    assert elapsed < CHECK_TIMEOUT


async def test_one_live_broker_in_the_list_is_enough(kafka_bootstrap: str) -> None:
    """A dead or impostor bootstrap server does not spoil a healthy list, nor slow it down."""
    async with listener(silent) as impostor:
        loop = asyncio.get_running_loop()
        started = loop.time()
        state = await check_kafka([f"127.0.0.1:{free_port()}", impostor, kafka_bootstrap])
        elapsed = loop.time() - started
    assert state == "ok"
    assert elapsed < CHECK_TIMEOUT


@pytest.mark.parametrize("handler", [hang_up, http_reply, echo, stale_response])
async def test_a_listener_that_is_not_kafka_is_not_ready(
    handler: Handler, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The TCP connect succeeds every time; only the missing Kafka answer fails the check."""
    caplog.set_level(logging.DEBUG)
    async with listener(handler) as bootstrap:
        response, elapsed = await readyz(redis_url, redis_prefix, bootstrap)
    not_ready(response)
    assert elapsed < CHECK_TIMEOUT  # a wrong answer fails at once, without waiting it out
    assert bootstrap not in response.text  # hosts are logged, never shown to probes
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    warned = [r for r in caplog.records if r.name == "api.readiness"]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING


async def test_a_silent_listener_times_out_within_the_bound(
    redis_url: str, redis_prefix: str
) -> None:
    async with listener(silent) as bootstrap:
        response, elapsed = await readyz(redis_url, redis_prefix, bootstrap)
    assert not_ready(response)["kafka"].endswith("(timeout)")
    assert CHECK_TIMEOUT <= elapsed < CHECK_TIMEOUT + 0.4


async def test_a_closed_port_is_not_ready(redis_url: str, redis_prefix: str) -> None:
    response, elapsed = await readyz(redis_url, redis_prefix, f"127.0.0.1:{free_port()}")
    not_ready(response)
    assert elapsed < CHECK_TIMEOUT
