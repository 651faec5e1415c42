"""Poison input (issue 4): records the worker cannot use are parked, never fatal or lost.

A small synthetic cohort is imported with ``leap import events --ticks`` into a ``leap
worker`` on ``clock=event``; before and after the import, poison records keyed to real
students are produced to chosen partitions of the activity topic. Every one must land on the
dead-letter topic with its reason and headers pointing back at it; the partitions must keep
moving (Redis equals ``leap replay`` key by key); and counted + dead-lettered == produced.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastavro import schemaless_writer
from prometheus_client.parser import text_string_to_metric_families

from leap.reference import partition_for
from leap.settings import Settings
from schemas.codec import ACTIVITY_EVENT, activity_codec
from streams.clock import CLOCK_HEADER
from tests.integration.leap_process import leap_running, wait_for
from tests.integration.test_pipeline import (
    START,
    ZONE,
    build_pipeline,
    import_until_closed,
    read_topic,
    replay,
    services,
    wait_all_closed,
)

pytestmark = pytest.mark.integration
__all__ = ["services"]  # a fixture, used by name

DAYS = 4
LAST = START + timedelta(days=DAYS - 1)
UNKNOWN_FINGERPRINT = b"\x01\x02\x03\x04\x05\x06\x07\x08"
UNKNOWN_REGISTRY_ID = 987654


def _event(event_id: str, student_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "student_id": student_id,
        "source": "moodle",
        "action": "viewed",
        "occurred_at": datetime.combine(START, time(9), ZONE),
        "quantity": 1.0,
        "course_id": None,
        "received_at": None,
        "attributes": {},
        **extra,
    }


def _body(record: dict[str, Any]) -> bytes:
    """The schemaless Avro body of ``record``, bypassing the codec's domain checks."""
    out = io.BytesIO()
    schemaless_writer(out, ACTIVITY_EVENT.parsed, record)
    return out.getvalue()


def _poison(students: list[str], settings: Settings) -> list[dict[str, Any]]:
    """Each poison record: its key, partition, bytes, expected reason and import phase."""

    def on(index: int) -> tuple[str, int]:
        sid = students[index]
        return sid, partition_for(sid, settings.partitions)

    codec = activity_codec()
    valid_body = _body(_event("poison:body", students[0]))
    items = []

    sid, part = on(0)
    items.append(("not_avro", sid.encode(), part, b"this is not avro", "before"))
    sid, part = on(1)
    items.append(
        (
            "unknown_schema",
            sid.encode(),
            part,
            b"\xc3\x01" + UNKNOWN_FINGERPRINT + _body(_event("poison:fingerprint", sid)),
            "before",
        )
    )
    sid, part = on(2)
    items.append(
        (
            "unknown_schema",
            sid.encode(),
            part,
            b"\x00" + UNKNOWN_REGISTRY_ID.to_bytes(4, "big") + valid_body,
            "after",
        )
    )
    sid, part = on(3)
    huge = {f"k{n:05d}": "x" * 100 for n in range(800)}  # ~ 90 kB of attributes
    oversized = codec.encode(_event("poison:oversized", sid, attributes=huge))
    assert len(oversized) > settings.max_event_bytes
    items.append(("oversized", sid.encode(), part, oversized, "after"))
    sid, part = on(4)
    empty_student = (
        b"\xc3\x01" + ACTIVITY_EVENT.fingerprint + _body(_event("poison:no-student", ""))
    )
    items.append(("missing_student", sid.encode(), part, empty_student, "before"))
    sid, part = on(5)
    wrong = (part + 1) % settings.partitions
    items.append(
        (
            "wrong_partition",
            sid.encode(),
            wrong,
            codec.encode(_event("poison:wrong-partition", sid)),
            "after",
        )
    )
    sid, part = on(6)
    items.append(("wrong_key", None, part, codec.encode(_event("poison:no-key", sid)), "before"))
    return [
        {"reason": r, "key": k, "partition": p, "value": v, "phase": ph} for r, k, p, v, ph in items
    ]


async def _produce(settings: Settings, poison: list[dict[str, Any]], phase: str) -> None:
    """Produce this phase's poison records, recording each one's RecordMetadata."""
    from streams.topics import ensure_topics

    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", max_request_size=4 * 2**20
    )
    await producer.start()
    try:
        for item in poison:
            if item["phase"] == phase:
                item["metadata"] = await producer.send_and_wait(
                    settings.activity_topic,
                    item["value"],
                    key=item["key"],
                    partition=item["partition"],
                )
    finally:
        await producer.stop()


def _metrics(url: str) -> dict[str, float]:
    """Worker counters: events counted, and dead letters by reason (``dl:<reason>``)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for s in family.samples:
            if s.name == "leap_worker_events_total":
                key = f"events:{s.labels['outcome']}"
                out[key] = out.get(key, 0) + s.value
            elif s.name == "leap_worker_dead_letters_total":
                out[f"dl:{s.labels['reason']}"] = s.value
    return out


def test_poison_input_is_dead_lettered_and_partitions_keep_moving(
    tmp_path: Path, services: dict[str, str], topic_prefix: str
) -> None:
    p = build_pipeline(tmp_path, services, topic_prefix, "event", START, DAYS, False)
    settings = p.settings
    with p.students_csv.open() as f:
        students = [row["student_id"] for row in csv.DictReader(f)]
    with p.events_file.open() as lines:
        valid = sum(1 for line in lines if line.strip())
    poison = _poison(students, settings)
    started = datetime.now(UTC)
    url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"

    with leap_running(["worker", "--loglevel", "warning"], p.env, p.worker_log):
        asyncio.run(_produce(settings, poison, "before"))
        import_until_closed(p, p.events_file, LAST)
        asyncio.run(_produce(settings, poison, "after"))
        states = wait_all_closed(p, LAST, len(students), timeout=90)
        dead = wait_for(
            lambda: (
                (d := asyncio.run(read_topic(settings, settings.dead_letter_topic)))
                and len(d) >= len(poison)
                and d
            ),
            timeout=30,
            what=f"{len(poison)} dead letters",
            log=p.worker_log,
        )
        metrics = wait_for(
            lambda: (m := _metrics(url)).get("events:counted", 0) >= valid and m,
            timeout=20,
            what=f"{valid} events counted",
            log=p.worker_log,
        )
        activity = asyncio.run(read_topic(settings, settings.activity_topic))
    finished = datetime.now(UTC)

    # 1. Every poison record is parked with its reason, pointing back at the record produced.
    assert len(dead) == len(poison)
    by_origin = {}
    for message in dead:
        headers = {k: v.decode() for k, v in message.headers}
        origin = (int(headers["leap-original-partition"]), int(headers["leap-original-offset"]))
        by_origin[origin] = (message, headers)
    for item in poison:
        meta = item["metadata"]
        assert (meta.topic, meta.partition) == (settings.activity_topic, item["partition"])
        message, headers = by_origin.pop((meta.partition, meta.offset))
        assert headers["leap-reason"] == item["reason"], item["reason"]
        assert headers["leap-original-topic"] == settings.activity_topic
        assert headers["leap-error"], item["reason"]
        at = datetime.fromisoformat(headers["leap-dead-lettered-at"])
        assert started <= at <= finished, item["reason"]
        assert message.value == item["value"], item["reason"]  # the original bytes, untouched
        assert message.key == item["key"], item["reason"]
    assert not by_origin

    # 2. The partitions kept moving: Redis holds replay's indicators as of the last day.
    expected = replay(p, LAST)
    assert set(states) == set(expected) == set(students)
    for sid, want in expected.items():
        got = states[sid]
        assert got["as_of"] == want["as_of"] == LAST.isoformat(), sid
        assert got["indicator"] == want["indicator"], sid
        assert float(got["score"]) == want["score"], sid
        assert float(got["reference_score"]) == want["reference_score"], sid
        assert int(got["window_days"]) == want["window_days"], sid

    # 3. Accounting: what was produced was either counted or dead-lettered, nothing else.
    records = [m for m in activity if not any(k == CLOCK_HEADER for k, _ in m.headers or ())]
    assert len(records) == valid + len(poison)
    assert metrics["events:counted"] + len(dead) == valid + len(poison)
    assert metrics.get("events:late", 0) == metrics.get("events:duplicate", 0) == 0
    reasons: dict[str, int] = {}
    for item in poison:
        reasons[item["reason"]] = reasons.get(item["reason"], 0) + 1
    assert {k[3:]: v for k, v in metrics.items() if k.startswith("dl:")} == reasons
    assert set(reasons) == {
        "missing_student",
        "not_avro",
        "oversized",
        "unknown_schema",
        "wrong_key",
        "wrong_partition",
    }
