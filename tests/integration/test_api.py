"""The query API against a real Redis: record shape, problems, readiness, outages."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn

import api.engagement
from api.app import create_app
from leap.reference import Student
from leap.settings import Settings
from leap.state_keys import days_key, indicator_key
from tests.integration.api_client import bearer, serve, with_audit_log, with_test_auth

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
STUDENT = "ABCDE12345"
INDICATOR = {
    "student_id": STUDENT,
    "indicator": "partial",
    "label": "Partial",
    "score": "41.5",
    "reference_score": "55.25",
    "as_of": "2025-03-14",
    "window_days": "7",
    "policy_version": "2025.1",
    "course": "BSc Computer Science",
    "year": "2",
    "updated_at": "2025-03-15T02:00:03+00:00",
}
#: The reference data the API authorises against (tests/integration/test_api_auth.py).
ROSTER = {
    STUDENT: Student(STUDENT, "BSc Computer Science", 2, "full-time", "Computing", "T0001"),
}


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def day(engagement: float, **sources: float) -> str:
    return json.dumps({"engagement": engagement, "sources": sources})


@pytest.fixture
def settings(redis_url: str, redis_prefix: str) -> Settings:
    return Settings(
        redis_url=redis_url, redis_prefix=redis_prefix, kafka_bootstrap=f"127.0.0.1:{free_port()}"
    )


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings, roster=ROSTER) as client:
        yield client


async def write_student(store: aioredis.Redis, prefix: str, days: dict[str, str]) -> None:
    await store.hset(indicator_key(prefix, STUDENT), mapping=INDICATOR)
    if days:
        await store.hset(days_key(prefix, STUDENT), mapping=days)


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["title"] and body["type"]
    assert "Traceback" not in response.text
    return body


async def test_engagement_record(
    client: httpx.AsyncClient,
    store: aioredis.Redis,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await write_student(
        store,
        redis_prefix,
        {
            "2025-03-01": day(9.0, vle=9),  # outside the window
            "2025-03-08": day(2.5, vle=2, library=0.5),
            "2025-03-11": "{not json",
            "2025-03-12": day(float("nan")),  # JSON-unsafe
            "2025-03-14": day(4, attendance=4),
            "2025-03-15": day(1.0, vle=1),
        },
    )
    with caplog.at_level(logging.WARNING, logger="api.engagement"):
        response = await client.get(f"/v1/students/{STUDENT}/engagement")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body == {
        "student_id": STUDENT,
        "indicator": "partial",
        "label": "Partial",
        "score": 41.5,
        "reference_score": 55.25,
        "as_of": "2025-03-14",
        "window_days": 7,
        "policy_version": "2025.1",
        "course": "BSc Computer Science",
        "year": 2,
        "updated_at": "2025-03-15T02:00:03+00:00",
        "days": [
            {"date": "2025-03-08", "engagement": 2.5, "sources": {"vle": 2, "library": 0.5}},
            {"date": "2025-03-09", "engagement": 0.0, "sources": {}},
            {"date": "2025-03-10", "engagement": 0.0, "sources": {}},
            {"date": "2025-03-11", "engagement": 0.0, "sources": {}},
            {"date": "2025-03-12", "engagement": 0.0, "sources": {}},
            {"date": "2025-03-13", "engagement": 0.0, "sources": {}},
            {"date": "2025-03-14", "engagement": 4.0, "sources": {"attendance": 4}},
        ],
        "today_so_far": {"date": "2025-03-15", "engagement": 1.0, "sources": {"vle": 1}},
        "stale": True,  # as of 2025-03-14, long closed
        "contact_allowed": True,
        "holiday": None,
    }
    corrupt = [r.getMessage() for r in caplog.records if "corrupt day" in r.getMessage()]
    assert len(corrupt) == 2
    assert any("2025-03-11" in message for message in corrupt)


async def test_no_day_open_yet(
    client: httpx.AsyncClient, store: aioredis.Redis, redis_prefix: str
) -> None:
    await write_student(store, redis_prefix, {})
    body = (await client.get(f"/v1/students/{STUDENT}/engagement")).json()
    assert body["today_so_far"] is None
    assert [d["engagement"] for d in body["days"]] == [0.0] * 7
    assert body["days"][0]["date"] == "2025-03-08"


async def test_unknown_student(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/students/ZZZZZ99999/engagement")
    body = assert_problem(response, 404)
    assert body["title"] == "Unknown student"
    assert "ZZZZZ99999" in body["detail"]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("student_id", ["bad id!", "x" * 200, "-leading-dash", "a@b.ac.uk"])
async def test_malformed_student_id(client: httpx.AsyncClient, student_id: str) -> None:
    response = await client.get(f"/v1/students/{student_id}/engagement")
    assert_problem(response, 400)


async def test_corrupt_indicator_is_a_problem_not_a_crash(
    client: httpx.AsyncClient, store: aioredis.Redis, redis_prefix: str
) -> None:
    await write_student(store, redis_prefix, {})
    await store.hset(indicator_key(redis_prefix, STUDENT), "score", "lots")
    response = await client.get(f"/v1/students/{STUDENT}/engagement")
    body = assert_problem(response, 500)
    assert "lots" not in response.text
    assert body["type"] == "urn:leap:problem:corrupt-indicator"


async def test_unexpected_error_is_generic_and_logged(
    client: httpx.AsyncClient,
    store: aioredis.Redis,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: object) -> dict:
        raise RuntimeError("internal secret")

    monkeypatch.setattr(api.engagement, "shape_record", broken)
    await write_student(store, redis_prefix, {})
    response = await client.get(f"/v1/students/{STUDENT}/engagement")
    assert_problem(response, 500)
    assert "internal secret" not in response.text
    logged = [r for r in caplog.records if r.name == "api.problems" and r.exc_info]
    assert logged and "internal secret" in str(logged[0].exc_info[1])


async def test_readyz_reports_kafka_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    body = assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["kafka"].startswith("error")


async def test_readyz_ok_with_a_real_broker(
    kafka_bootstrap: str, redis_url: str, redis_prefix: str
) -> None:
    """Ready needs a Kafka protocol answer; bare TCP listeners fail (test_readiness_kafka.py)."""
    settings = Settings(
        redis_url=redis_url, redis_prefix=redis_prefix, kafka_bootstrap=kafka_bootstrap
    )
    async with serve(settings) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"redis": "ok", "kafka": "ok"}}


async def test_redis_down(redis_prefix: str) -> None:
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        redis_prefix=redis_prefix,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
    )
    async with serve(settings, roster=ROSTER) as client:
        data = await client.get(f"/v1/students/{STUDENT}/engagement")
        ready = await client.get("/readyz")
    assert_problem(data, 503)
    assert data.headers["retry-after"] == "5"
    assert "score" not in data.json()
    checks = assert_problem(ready, 503)["checks"]
    assert checks["redis"].startswith("error") and checks["kafka"].startswith("error")


async def test_hung_redis_times_out_quickly(redis_prefix: str) -> None:
    """A Redis that accepts but never answers: one short timeout, then 503."""
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{port}/0",
        redis_prefix=redis_prefix,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
    )
    loop = asyncio.get_running_loop()
    try:
        async with serve(settings, roster=ROSTER) as client:
            started = loop.time()
            response = await client.get(f"/v1/students/{STUDENT}/engagement")
            elapsed = loop.time() - started
    finally:
        silent.close()
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "5"
    assert elapsed < 1.9


async def test_routing_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v2/nothing/here"), 404)
    wrong_method = await client.post(f"/v1/students/{STUDENT}/engagement")
    assert_problem(wrong_method, 405)
    assert "GET" in wrong_method.headers["allow"]


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert "/v1/students/{student_id}/engagement" in document["paths"]


async def test_served_by_uvicorn(
    settings: Settings, store: aioredis.Redis, redis_prefix: str
) -> None:
    """The way the CLI serves it: a real socket, uvicorn running the lifespan."""
    await write_student(store, redis_prefix, {"2025-03-14": day(4, vle=4)})
    port = free_port()
    app = create_app(with_audit_log(with_test_auth(settings)), ROSTER)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "uvicorn stopped during startup"
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=bearer()
        ) as client:
            response = await client.get(f"/v1/students/{STUDENT}/engagement")
    finally:
        server.should_exit = True
        await task
    assert response.status_code == 200
    assert response.json()["days"][-1] == {
        "date": "2025-03-14",
        "engagement": 4.0,
        "sources": {"vle": 4},
    }
