"""End to end on Apache Kafka and Redis: the stream's indicators equal ``leap replay``'s.

Twelve local days of a synthetic cohort (across the 2026-10-25 clock change) are imported
with ``leap import events --ticks`` into a ``leap worker`` on ``clock=event``. Then, key by
key: the indicators in Redis, the API's answers and every IndicatorChange published equal
what ``leap replay`` computes from the same file for each as-of date.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from connectors.synthetic import SyntheticTerm, make_students, write_students
from leap.reference import partition_for
from leap.settings import Settings
from leap.state_keys import cohort_key, indicator_key
from schemas.codec import activity_codec, activity_to_json, indicator_change_codec
from tests.integration.api_client import serve
from tests.integration.leap_process import (
    isolated_worker,
    leap_env,
    leap_running,
    run_leap,
    wait_for,
)

pytestmark = pytest.mark.integration

ZONE = ZoneInfo("Europe/London")
START = date(2026, 10, 19)  # a Monday; the clocks go back on Sunday 2026-10-25
DAYS = 12
LAST = START + timedelta(days=DAYS - 1)
GRACE = timedelta(hours=2)
PARTITIONS = 4


@dataclass
class Pipeline:
    settings: Settings
    env: dict[str, str]
    workdir: Path
    students_csv: Path
    events_file: Path
    worker_log: Path


def build_pipeline(
    tmp_path: Path,
    services: dict[str, str],
    topic_prefix: str,
    clock: str,
    start: date,
    days: int,
    bad_lines: bool,
) -> Pipeline:
    """A cohort's events over ``days`` local days from ``start`` in a JSON-lines file, and
    the ``LEAP_*`` configuration of a worker on isolated topics and Redis keys."""
    students = make_students(250, seed=11)
    students_csv = tmp_path / "students.csv"
    write_students(students, students_csv)
    events_file = tmp_path / "events.jsonl"
    term = SyntheticTerm(students, start, days, ZONE, GRACE, seed=11)
    with events_file.open("w") as out:
        for item in term.items():
            if isinstance(item, dict):
                out.write(json.dumps(activity_to_json(item)) + "\n")
        if bad_lines:  # input the importer must reject and park, not drop or choke on
            out.write("this is not json\n")
            out.write(json.dumps({"event_id": "x", "student_id": "S1000001"}) + "\n")
    config: dict[str, Any] = {
        **services,
        "clock": clock,
        "tick_interval": 1,
        "timezone": "Europe/London",
        "day_close_grace": "PT2H",
        "partitions": PARTITIONS,
        "students": students_csv,
        **isolated_worker(topic_prefix, tmp_path / "worker"),
    }
    return Pipeline(
        settings=Settings(**config),
        env=leap_env(**config),
        workdir=tmp_path,
        students_csv=students_csv,
        events_file=events_file,
        worker_log=tmp_path / "worker.log",
    )


@pytest.fixture
def services(kafka_bootstrap: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    return {
        "kafka_bootstrap": kafka_bootstrap,
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
    }


@pytest.fixture
def pipeline(tmp_path: Path, services: dict[str, str], topic_prefix: str) -> Pipeline:
    return build_pipeline(tmp_path, services, topic_prefix, "event", START, DAYS, True)


def replay(p: Pipeline, as_of: date) -> dict[str, dict[str, Any]]:
    out = run_leap(
        ["replay", str(p.events_file), "--students", str(p.students_csv), "--as-of", str(as_of)],
        p.env,
        p.workdir,
    )
    return {r["student_id"]: r for r in map(json.loads, out.splitlines())}


def redis_indicators(settings: Settings) -> dict[str, dict[str, str]]:
    """Every indicator state under the settings' Redis prefix, by student id."""
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    keys = list(client.scan_iter(match=indicator_key(settings.redis_prefix, "*"), count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return {state["student_id"]: state for state in pipe.execute()}


def all_closed_as_of(p: Pipeline, day: date, expected: int) -> dict[str, dict[str, str]] | None:
    states = redis_indicators(p.settings)
    done = [s for s in states.values() if s["as_of"] == day.isoformat()]
    return states if len(done) == expected else None


def import_until_closed(p: Pipeline, events_file: Path, last: date) -> None:
    """``leap import events --ticks``, with event time moved on until ``last`` closes."""
    until = datetime.combine(last + timedelta(days=1), time(0), ZONE) + GRACE
    run_leap(
        ["import", "events", str(events_file), "--ticks", "--until", until.isoformat()],
        p.env,
        p.workdir,
    )


def wait_all_closed(
    p: Pipeline, last: date, expected: int, timeout: float = 120, log: Path | None = None
) -> dict[str, dict[str, str]]:
    """Every one of ``expected`` indicators in Redis, as of ``last``."""
    return wait_for(
        lambda: all_closed_as_of(p, last, expected),
        timeout=timeout,
        what=f"every student's indicator as of {last}",
        log=log or p.worker_log,
    )


async def read_topic(settings: Settings, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        records = []
        while True:
            batch = await consumer.getmany(timeout_ms=3000)
            if not batch:
                return records
            for messages in batch.values():
                records.extend(messages)
    finally:
        await consumer.stop()


async def produce_poison(settings: Settings) -> None:
    """Bytes that are not Avro, and a valid event under the wrong key: both dead-lettered."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(settings.activity_topic, b"this is not avro", key=b"S1000001")
        event = {
            "event_id": "poison:wrong-key",
            "student_id": "S1000001",
            "source": "moodle",
            "action": "viewed",
            "occurred_at": datetime.combine(START, time(9), ZONE),
            "quantity": 1.0,
            "course_id": None,
            "received_at": None,
            "attributes": {},
        }
        wrong_key = "S1000002"
        await producer.send_and_wait(
            settings.activity_topic,
            activity_codec().encode(event),
            key=wrong_key.encode(),
            partition=partition_for(wrong_key, settings.partitions),
        )
    finally:
        await producer.stop()


def test_stream_equals_replay_key_by_key(pipeline: Pipeline, postgres_dsn: str) -> None:
    p = pipeline
    asyncio.run(_migrate(postgres_dsn))
    p.env["LEAP_POSTGRES_DSN"] = postgres_dsn
    students = {r["student_id"] for r in replay(p, START).values()}
    with leap_running(["worker", "--loglevel", "warning"], p.env, p.worker_log):
        asyncio.run(_create_topics_then_poison(p.settings))
        import_until_closed(p, p.events_file, LAST)
        states = wait_all_closed(p, LAST, len(students), timeout=180)
        changes_raw = asyncio.run(read_topic(p.settings, p.settings.indicator_changes_topic))
        history = wait_for(
            lambda: (
                (h := asyncio.run(_history(postgres_dsn))) and len(h) == len(students) * DAYS and h
            ),
            timeout=30,
            what="a history row per student and day",
            log=p.worker_log,
        )
        dead_letters = asyncio.run(read_topic(p.settings, p.settings.dead_letter_topic))

    # 1. Redis holds exactly replay's indicators as of the last closed day.
    expected = replay(p, LAST)
    assert set(states) == set(expected)
    for sid, want in expected.items():
        got = states[sid]
        assert got["indicator"] == want["indicator"], sid
        assert float(got["score"]) == want["score"], sid
        assert float(got["reference_score"]) == want["reference_score"], sid
        assert int(got["window_days"]) == want["window_days"], sid
    assert {s["indicator"] for s in states.values()} >= {"high", "good", "very_low"}
    # ... and each cohort's distribution hash counts them.
    client = redis.Redis.from_url(p.settings.redis_url, decode_responses=True)
    cohorts: dict[tuple[str, int], dict[str, int]] = {}
    for want in expected.values():
        counts = cohorts.setdefault((want["course"], want["year"]), {})
        counts[want["indicator"]] = counts.get(want["indicator"], 0) + 1
    for (course, year), counts in cohorts.items():
        stored = client.hgetall(cohort_key(p.settings.redis_prefix, course, year))
        assert stored["as_of"] == LAST.isoformat(), (course, year)
        assert stored["size"] == str(sum(counts.values()))
        assert {k: int(stored[k]) for k in counts} == counts, (course, year)

    # 2. Every IndicatorChange equals the day-by-day changes replay implies.
    codec = indicator_change_codec()
    got_changes = sorted(
        (c["student_id"], c["as_of"], c["previous_indicator"], c["indicator"], c["score"])
        for c in (codec.decode(m.value) for m in changes_raw)
    )
    want_changes = []
    previous: dict[str, str | None] = dict.fromkeys(students)
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        for sid, result in sorted(replay(p, day).items()):
            # 2b. ... and the day's history row in PostgreSQL holds the same.
            row = history[(sid, day)]
            assert (row["indicator"], row["score"], row["reference_score"]) == (
                result["indicator"],
                result["score"],
                result["reference_score"],
            ), (sid, day)
            if result["indicator"] != previous[sid]:
                want_changes.append((sid, day, previous[sid], result["indicator"], result["score"]))
            previous[sid] = result["indicator"]
    assert got_changes == sorted(want_changes)

    # 3. Bad input was parked with its reason, not dropped and not fatal.
    reasons = sorted(dict(m.headers)["leap-reason"].decode() for m in dead_letters)
    assert reasons == ["not_avro", "not_json", "schema_invalid", "wrong_key"]

    # 4. The API serves the same indicators.
    asyncio.run(_check_api(p.settings, expected))


async def _migrate(dsn: str) -> None:
    from tests.integration.leap_db import migrated_pool

    async with migrated_pool(dsn):
        pass


async def _history(dsn: str) -> dict[tuple[str, date], dict[str, Any]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT * FROM leap.indicator_history")
    finally:
        await connection.close()
    return {(r["student_id"], r["as_of"]): dict(r) for r in rows}


async def _create_topics_then_poison(settings: Settings) -> None:
    from streams.topics import ensure_topics

    await ensure_topics(settings)
    await produce_poison(settings)


async def _check_api(settings: Settings, expected: dict[str, dict[str, Any]]) -> None:
    async with serve(settings) as client:
        for sid in sorted(expected)[:25]:
            response = await client.get(f"/v1/students/{sid}/engagement")
            assert response.status_code == 200, response.text
            body = response.json()
            want = expected[sid]
            assert (body["indicator"], body["score"], body["as_of"]) == (
                want["indicator"],
                want["score"],
                want["as_of"],
            )
            assert len(body["days"]) == want["window_days"]
        missing = await client.get("/v1/students/NOBODY1/engagement")
        assert missing.status_code == 404


def test_wall_clock_closes_yesterday_for_a_backfill(
    tmp_path: Path, services: dict[str, str], topic_prefix: str
) -> None:
    """clock=wall: events of the last 8 days imported before the worker starts; its own
    ticks close the most recent day, and the indicators equal replay as of that day."""
    today = datetime.now(ZONE).date()
    p = build_pipeline(
        tmp_path, services, topic_prefix, "wall", today - timedelta(days=8), 8, False
    )
    run_leap(["import", "events", str(p.events_file)], p.env, p.workdir)
    students = replay(p, today)
    with leap_running(["worker", "--loglevel", "warning"], p.env, p.worker_log):
        states = wait_for(
            lambda: (s := redis_indicators(p.settings)) and len(s) == len(students) and s,
            timeout=120,
            what="every student's indicator from the wall clock",
            log=p.worker_log,
        )
    as_of = {s["as_of"] for s in states.values()}
    assert len(as_of) == 1
    closed = date.fromisoformat(as_of.pop())
    # the newest day whose midnight + 2 h has passed: yesterday, or the day before before 02:00
    assert today - timedelta(days=2) <= closed <= today - timedelta(days=1)
    expected = replay(p, closed)
    assert {sid: (s["indicator"], float(s["score"])) for sid, s in states.items()} == {
        sid: (r["indicator"], r["score"]) for sid, r in expected.items()
    }
