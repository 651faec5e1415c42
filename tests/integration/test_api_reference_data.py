"""The API's reference data from the compacted topics, and opting out through the API.

The API loads the roster (from the reference topic, or ``LEAP_STUDENTS``) and contact
preferences at start and follows both while running. A PUT of a contact preference is
answered once Kafka has acknowledged the record, and the API's own follower then shows it.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from api.access import Principal, Role
from api.app import create_app
from leap.compacted import CompactedTopic
from leap.reference import Student, student_to_record
from leap.settings import Settings
from leap.state_keys import indicator_key
from streams.topics import ensure_topics
from tests.integration.api_client import bearer, serve, with_audit_log, with_test_auth
from tests.integration.leap_process import isolated_worker
from tests.integration.test_api import INDICATOR, free_port
from tests.integration.test_api_auth import ROSTER

pytestmark = pytest.mark.integration

SID = "S1000001"
STUDENT = Principal(Role.STUDENT, SID)
TUTOR = Principal(Role.TUTOR, "T0001")
PREFERENCE = f"/v1/students/{SID}/contact-preference"


@pytest.fixture
async def settings(
    kafka_bootstrap: str, redis_url: str, redis_prefix: str, topic_prefix: str, tmp_path: Path
) -> Settings:
    """Real Kafka with reference topics of this test's own; every cohort in scope."""
    institution = tmp_path / "institution.toml"
    institution.write_text("# every cohort in scope\n")
    settings = Settings(
        redis_url=redis_url,
        redis_prefix=redis_prefix,
        kafka_bootstrap=kafka_bootstrap,
        partitions=1,
        institution=institution,
        **isolated_worker(topic_prefix, tmp_path / "unused"),
    )
    await ensure_topics(settings)
    store = aioredis.Redis.from_url(redis_url)
    await store.hset(indicator_key(redis_prefix, SID), mapping={**INDICATOR, "student_id": SID})
    await store.aclose()
    return settings


@pytest.fixture
def students_csv(tmp_path: Path) -> Path:
    path = tmp_path / "students.csv"
    path.write_text(
        "student_id,course,year,mode,department,tutor_id\n"
        f"{SID},BSc Physics,1,full-time,Physics,T0001\n"
    )
    return path


def topic_state(settings: Settings, topic: str) -> dict[str, Any]:
    state: dict[str, Any] = {}

    def keep(key: str, value: dict[str, Any] | None) -> None:
        state[key] = value

    asyncio.run(CompactedTopic(settings.bootstrap_servers, topic, keep).load())
    return state


async def until_contact_allowed(client: httpx.AsyncClient, expected: bool) -> float:
    """Seconds until the API's GET says ``expected`` (fails after 10 s)."""
    started = time.monotonic()
    while time.monotonic() - started < 10:
        response = await client.get(PREFERENCE, headers=bearer(STUDENT))
        assert response.status_code == 200, response.text
        if response.json()["contact_allowed"] is expected:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"contact_allowed never became {expected}")


async def test_opt_out_round_trip(settings: Settings, students_csv: Path) -> None:
    files = settings.model_copy(update={"students": students_csv})
    async with serve(files, headers={}) as client:
        assert (await client.get(PREFERENCE, headers=bearer(STUDENT))).json() == {
            "student_id": SID,
            "contact_allowed": True,
        }
        response = await client.put(
            PREFERENCE, json={"contact_allowed": False}, headers=bearer(STUDENT)
        )
        assert response.status_code == 200, response.text
        record = response.json()
        assert record["contact_allowed"] is False and record["requested_by"] == "student"
        seen_after = await until_contact_allowed(client, False)
        on_topic = await asyncio.to_thread(topic_state, files, files.contact_preferences_topic)
        assert on_topic == {SID: record}
        engagement = await client.get(f"/v1/students/{SID}/engagement", headers=bearer(STUDENT))
        assert engagement.json()["contact_allowed"] is False

        tutor = await client.put(PREFERENCE, json={"contact_allowed": True}, headers=bearer(TUTOR))
        assert tutor.status_code == 404  # a tutor may read it, never set it
        assert (await client.get(PREFERENCE, headers=bearer(TUTOR))).status_code == 200

        by_admin = await client.put(PREFERENCE, json={"contact_allowed": True}, headers=bearer())
        assert by_admin.json()["requested_by"] == "admin"
        await until_contact_allowed(client, True)
    print(f"opt-out visible to the API's GET {seen_after:.2f} s after the PUT's 200")


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"contact_allowed": "no"}', 422),
        (b'{"contact_allowed": 0}', 422),
        (b'{"contact_allowed": false, "reason": "x"}', 422),
        (b"[false]", 422),
        (b'{"contact_allowed": false, "pad": "' + b"x" * 2000 + b'"}', 413),
    ],
)
async def test_preference_body_is_checked(settings: Settings, body: bytes, status: int) -> None:
    async with serve(settings, roster=ROSTER, headers=bearer(STUDENT)) as client:
        response = await client.put(PREFERENCE, content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (
        await asyncio.to_thread(topic_state, settings, settings.contact_preferences_topic)
    ) == {}


async def test_kafka_down_is_a_503(redis_url: str, redis_prefix: str) -> None:
    down = Settings(
        redis_url=redis_url, redis_prefix=redis_prefix, kafka_bootstrap=f"127.0.0.1:{free_port()}"
    )
    async with serve(down, roster=ROSTER, headers=bearer(STUDENT)) as client:
        started = time.monotonic()
        response = await client.put(PREFERENCE, json={"contact_allowed": False})
        elapsed = time.monotonic() - started
        assert (await client.get(PREFERENCE)).json()["contact_allowed"] is True
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == "urn:leap:problem:preference-not-recorded"
    assert elapsed < 8


async def publish_student(settings: Settings, student: Student) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.reference_students_topic,
            json.dumps(student_to_record(student)).encode(),
            key=student.student_id.encode(),
        )
    finally:
        await producer.stop()


async def test_roster_follows_the_reference_topic(settings: Settings) -> None:
    """No LEAP_STUDENTS (as deployed): the roster is the topic's at start, then follows it."""
    engagement = f"/v1/students/{SID}/engagement"
    await publish_student(settings, Student(SID, "BSc Physics", 1, "full-time", "Physics", "T0002"))
    app = create_app(with_audit_log(with_test_auth(settings)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://leap.test") as client:

            async def status(principal: Principal) -> int:
                return (await client.get(engagement, headers=bearer(principal))).status_code

            assert await status(Principal(Role.TUTOR, "T0002")) == 200
            assert await status(TUTOR) == 404
            # `leap reference load` while the API runs: the student changes tutor.
            await publish_student(
                settings, Student(SID, "BSc Physics", 1, "full-time", "Physics", "T0001")
            )
            deadline = time.monotonic() + 10
            while await status(TUTOR) != 200:
                assert time.monotonic() < deadline, "the change never reached the API"
                await asyncio.sleep(0.1)
            assert await status(Principal(Role.TUTOR, "T0002")) == 404
