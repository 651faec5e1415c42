"""Connectors change indicators end to end: Moodle's log, every file feed, the xAPI and the
Caliper endpoints, through Apache Kafka into a ``leap worker``, equal ``leap replay`` over
exactly what the connectors published.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette

from connectors.caliper_app import create_caliper_app
from connectors.identity import IdentityMap
from connectors.moodle import MoodleConfig
from connectors.moodle_cli import run_poller
from connectors.publisher import ActivityPublisher, Tick
from connectors.xapi_app import create_xapi_app
from leap.settings import Settings
from schemas.codec import activity_codec, activity_to_json
from streams.clock import close_instant
from streams.topics import ensure_topics
from tests.integration.leap_process import (
    isolated_worker,
    leap_env,
    leap_running,
    run_leap,
    wait_for,
)
from tests.integration.test_caliper_endpoint import AUTH as CALIPER_AUTH
from tests.integration.test_caliper_endpoint import ENVELOPE as CALIPER_ENVELOPE
from tests.integration.test_caliper_endpoint import TOKEN as CALIPER_TOKEN
from tests.integration.test_moodle_connector import fill_moodle
from tests.integration.test_pipeline import read_topic, redis_indicators
from tests.integration.test_xapi_endpoint import BATCH as XAPI_BATCH
from tests.integration.test_xapi_endpoint import HEADERS as XAPI_HEADERS

pytestmark = pytest.mark.integration

FEEDS = Path(__file__).parent.parent / "data" / "feeds"
AS_OF = date(2026, 10, 26)  # Moodle's log is on the 20th, the feeds on the 23rd to the 26th
STUDENTS = ["S1000001", "S1000002", "S1000003", "S1000004", "S1000005"]
FEED_IMPORTS = [
    ("logons", "logons.csv", "windows"),
    ("attendance", "attendance.csv", None),
    ("submissions", "submissions.csv", None),
    ("lecture-capture", "lecture_capture.jsonl", None),
    ("library", "library.csv", "library"),
]


async def moodle_database(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await fill_moodle(connection)
    finally:
        await connection.close()


async def tick(settings: Settings, at: datetime) -> None:
    async with ActivityPublisher(settings) as publisher:
        await publisher.publish([Tick(int(at.timestamp() * 1000))])


async def post_statements(settings: Settings) -> None:
    """An xAPI batch and a Caliper envelope, each answered only once Kafka has them."""
    identities = IdentityMap(
        {"ajones": "S1000001", "bsmith": "S1000002", "https://example.edu/users/bsmith": "S1000002"}
    )
    xapi = create_xapi_app(settings, identities, {"moodle": "s3cret"})
    async with serve_app(xapi) as client:
        response = await client.post("/xAPI/statements", json=XAPI_BATCH, headers=XAPI_HEADERS)
        assert response.status_code == 200, response.text
    caliper = create_caliper_app(settings, identities, {"lms": CALIPER_TOKEN})
    async with serve_app(caliper) as client:
        response = await client.post("/caliper", json=CALIPER_ENVELOPE, headers=CALIPER_AUTH)
        assert response.status_code == 200, response.text


@asynccontextmanager
async def serve_app(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://leap.test") as client:
            yield client


async def poll_moodle(settings: Settings, dsn: str) -> None:
    async with run_poller(settings, MoodleConfig(dsn=dsn, site="e2e")) as poller:
        await poller.run_once()


def test_connectors_change_indicators_end_to_end(
    tmp_path: Path,
    kafka_bootstrap: str,
    redis_url: str,
    redis_prefix: str,
    topic_prefix: str,
    postgres_dsn: str,
) -> None:
    students_csv = tmp_path / "students.csv"
    students_csv.write_text(
        "student_id,course,year,mode,department,tutor_id\n"
        + "".join(f"{s},EBS-BSC-BM,1,full-time,EBS,T1\n" for s in STUDENTS)
    )
    config: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
        "clock": "event",
        "partitions": 3,
        "students": students_csv,
        **isolated_worker(topic_prefix, tmp_path / "worker"),
    }
    settings = Settings(**config)
    env = leap_env(**config)
    asyncio.run(ensure_topics(settings))
    # Every partition starts its clock before the first connector event...
    asyncio.run(tick(settings, datetime(2026, 10, 19, 12, tzinfo=UTC)))
    for feed, file, system in FEED_IMPORTS:
        args = ["connector", "feed", "import", feed, str(FEEDS / file)]
        args += ["--identities", str(FEEDS / "identities.csv")]
        run_leap([*args, "--system", system] if system else args, env, tmp_path)
    asyncio.run(moodle_database(postgres_dsn))
    asyncio.run(poll_moodle(settings, postgres_dsn))
    asyncio.run(post_statements(settings))
    # A re-import re-sends the same event ids: the worker must count nothing twice.
    run_leap(["connector", "feed", "import", "attendance", str(FEEDS / "attendance.csv"),
              "--identities", str(FEEDS / "identities.csv")], env, tmp_path)  # fmt: skip
    # ...and is moved past the close of the last day afterwards.
    asyncio.run(tick(settings, close_instant(AS_OF, settings.zone, settings.day_close_grace)))

    log = tmp_path / "worker.log"
    with leap_running(["worker", "--loglevel", "warning"], env, log):
        states = wait_for(
            lambda: (s := redis_indicators_as_of(settings)) and len(s) == len(STUDENTS) and s,
            timeout=120,
            what=f"indicators as of {AS_OF}",
            log=log,
        )

    published = tmp_path / "published.jsonl"
    codec = activity_codec()
    records = asyncio.run(read_topic(settings, settings.activity_topic))
    with published.open("w") as out:
        for record in records:
            if record.value:  # clock ticks carry no event
                out.write(json.dumps(activity_to_json(codec.decode(record.value))) + "\n")
    events = [json.loads(line) for line in published.read_text().splitlines()]
    assert len(events) > len({e["event_id"] for e in events})  # the duplicates were published
    sources = {e["source"] for e in events}
    assert {e["event_id"].split(":")[0] for e in events} >= {"moodle", "xapi", "caliper"}
    assert sources == {
        "moodle", "computer_login", "attendance", "submission", "lecture_capture", "library"
    }  # fmt: skip
    out = run_leap(
        ["replay", str(published), "--students", str(students_csv), "--as-of", str(AS_OF)],
        env,
        tmp_path,
    )
    expected = {r["student_id"]: r for r in map(json.loads, out.splitlines())}
    assert {sid: (s["indicator"], float(s["score"])) for sid, s in states.items()} == {
        sid: (r["indicator"], r["score"]) for sid, r in expected.items()
    }
    active = {sid for sid, s in states.items() if float(s["score"]) > 0}
    assert active == {"S1000001", "S1000002", "S1000003"}
    assert {states[s]["indicator"] for s in ("S1000004", "S1000005")} == {"very_low"}


def redis_indicators_as_of(settings: Settings) -> dict[str, dict[str, str]]:
    return {
        sid: state
        for sid, state in redis_indicators(settings).items()
        if state.get("as_of") == AS_OF.isoformat()
    }
