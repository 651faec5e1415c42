"""A logon export and an attendance register, imported through real Kafka as an operator would."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from schemas.codec import activity_codec
from tests.integration.leap_process import leap_env

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent.parent / "data" / "feeds"
LOGONS = DATA / "logons.csv"
ATTENDANCE = DATA / "attendance.csv"
RUN_FEEDS = "from connectors.feeds_cli import feeds_app; feeds_app()"

EXPECTED_EVENTS = [
    (
        "attendance:LEC-BS101-W5-1:ajones",
        "S1000001",
        "attendance",
        "attended",
        datetime(2026, 10, 26, 9, tzinfo=UTC),
    ),
    (
        "attendance:LEC-BS101-W5-1:bsmith",
        "S1000002",
        "attendance",
        "attended",
        datetime(2026, 10, 26, 9, tzinfo=UTC),
    ),
    (
        "logon:LAB-PC-01:ajones:2026-10-24T08:15:02.123Z",
        "S1000001",
        "computer_login",
        "logged_in",
        datetime(2026, 10, 24, 8, 15, 2, 123000, tzinfo=UTC),
    ),
    (
        "logon:LAB-PC-02:bsmith:2026-10-26T09:00:00.000Z",
        "S1000002",
        "computer_login",
        "logged_in",
        datetime(2026, 10, 26, 9, tzinfo=UTC),
    ),
    (
        "logon:LIB-KIOSK-3:CWU:2026-10-26T10:00:00.000Z",
        "S1000003",
        "computer_login",
        "logged_in",
        datetime(2026, 10, 26, 10, tzinfo=UTC),
    ),
]
EXPECTED_REJECTS = [
    (f"{ATTENDANCE}:5", "unmapped_user", b"dmurphy,LEC-BS101-W5-1,present,2026-10-26 09:00"),
    (f"{ATTENDANCE}:7", "bad_time", b"bsmith,SEM-BS101-W5-2,present,27/10/2026 14:00"),
    (f"{ATTENDANCE}:8", "bad_row", b"cwu,SEM-BS101-W5-2,present"),
    (f"{LOGONS}:9", "unmapped_user", b"2026-10-26 11:00:00,dmurphy,LAB-PC-01,2"),
]


def import_feed(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_FEEDS,
            "import",
            *args,
            "--identities",
            str(DATA / "identities.csv"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"feed import failed:\n{done.stdout}\n{done.stderr}"
    return done.stderr


async def consume(bootstrap: str, topic: str, expected: int) -> list[Any]:
    """Every record on ``topic`` once ``expected`` have arrived, and a second to spot extras."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < expected:
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    records.extend(batch)
        for batch in (await consumer.getmany(timeout_ms=1000)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


def test_feed_files_become_events_and_rejects(kafka_bootstrap: str, topic_prefix: str) -> None:
    activity_topic = f"{topic_prefix}leap.activity"
    dead_letter_topic = f"{topic_prefix}leap.dead-letter"
    env = leap_env(
        kafka_bootstrap=kafka_bootstrap,
        activity_topic=activity_topic,
        dead_letter_topic=dead_letter_topic,
        indicator_changes_topic=f"{topic_prefix}leap.indicator-changes",
        cohort_scores_topic=f"{topic_prefix}leap.cohort-scores",
        partitions=3,
        timezone="Europe/London",
    )

    logons = import_feed(env, "logons", str(LOGONS), "--system", "windows")
    attendance = import_feed(env, "attendance", str(ATTENDANCE))

    assert "read 8, published 3, skipped 4, rejected 1" in logons
    assert "skipped machine_account: 1" in logons
    assert "unmapped users: 1 distinct" in logons
    assert "read 7, published 2, skipped 2, rejected 3" in attendance
    assert f"rejected bad_time: 1 (on {dead_letter_topic})" in attendance

    codec = activity_codec()
    messages = asyncio.run(consume(kafka_bootstrap, activity_topic, len(EXPECTED_EVENTS)))
    events = [codec.decode(m.value) for m in messages]
    assert [m.key.decode() for m in messages] == [e["student_id"] for e in events]
    assert (
        sorted(
            (e["event_id"], e["student_id"], e["source"], e["action"], e["occurred_at"])
            for e in events
        )
        == EXPECTED_EVENTS
    )

    dead = asyncio.run(consume(kafka_bootstrap, dead_letter_topic, len(EXPECTED_REJECTS)))
    rejects = []
    for m in dead:
        headers = {k: v.decode() for k, v in m.headers}
        rejects.append((headers["leap-origin"], headers["leap-reason"], m.value))
    assert sorted(rejects) == EXPECTED_REJECTS

    import_feed(env, "logons", str(LOGONS), "--system", "windows")
    import_feed(env, "attendance", str(ATTENDANCE))
    again = asyncio.run(consume(kafka_bootstrap, activity_topic, 2 * len(EXPECTED_EVENTS)))
    ids = Counter(codec.decode(m.value)["event_id"] for m in again)
    assert ids == Counter({event_id: 2 for event_id, *_ in EXPECTED_EVENTS})
