"""The Moodle connector on real PostgreSQL (Moodle's own DDL) and real Kafka.

A small Moodle log with everything a live one has: students' own actions, a teacher's,
an admin "logged in as" a student, cron (cli) and restore rows, anonymous feedback, a
guest, a deleted user, users with no or a malformed idnumber, the front page, id gaps.
Exactly the students' engagement must reach leap.activity, the unmapped users the
dead-letter topic, and a crash between publish and checkpoint may re-send one batch only.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from connectors.moodle import Checkpoints, MoodleConfig, MoodleSummary
from connectors.moodle_cli import run_poller
from leap.settings import Settings
from schemas.codec import activity_codec
from streams.topics import ensure_topics

pytestmark = pytest.mark.integration

#: Moodle's tables as its installer creates them on PostgreSQL (columns LEAP does not read
#: are kept where cheap, so the queries meet the real shape).
MOODLE_DDL = """
CREATE TABLE mdl_user (
    id BIGSERIAL PRIMARY KEY,
    auth VARCHAR(20) NOT NULL DEFAULT 'manual',
    confirmed SMALLINT NOT NULL DEFAULT 0,
    deleted SMALLINT NOT NULL DEFAULT 0,
    suspended SMALLINT NOT NULL DEFAULT 0,
    mnethostid BIGINT NOT NULL DEFAULT 1,
    username VARCHAR(100) NOT NULL DEFAULT '',
    idnumber VARCHAR(255) NOT NULL DEFAULT '',
    firstname VARCHAR(100) NOT NULL DEFAULT '',
    lastname VARCHAR(100) NOT NULL DEFAULT '',
    email VARCHAR(100) NOT NULL DEFAULT '',
    timecreated BIGINT NOT NULL DEFAULT 0,
    UNIQUE (mnethostid, username)
);
CREATE TABLE mdl_course (
    id BIGSERIAL PRIMARY KEY,
    category BIGINT NOT NULL DEFAULT 0,
    sortorder BIGINT NOT NULL DEFAULT 0,
    fullname VARCHAR(1333) NOT NULL DEFAULT '',
    shortname VARCHAR(255) NOT NULL DEFAULT '',
    idnumber VARCHAR(100) NOT NULL DEFAULT '',
    format VARCHAR(21) NOT NULL DEFAULT 'topics',
    visible SMALLINT NOT NULL DEFAULT 1,
    startdate BIGINT NOT NULL DEFAULT 0,
    timecreated BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE mdl_logstore_standard_log (
    id BIGSERIAL PRIMARY KEY,
    eventname VARCHAR(255) NOT NULL DEFAULT '',
    component VARCHAR(100) NOT NULL DEFAULT '',
    action VARCHAR(100) NOT NULL DEFAULT '',
    target VARCHAR(100) NOT NULL DEFAULT '',
    objecttable VARCHAR(50),
    objectid BIGINT,
    crud VARCHAR(1) NOT NULL DEFAULT '',
    edulevel SMALLINT NOT NULL,
    contextid BIGINT NOT NULL,
    contextlevel BIGINT NOT NULL,
    contextinstanceid BIGINT NOT NULL,
    userid BIGINT NOT NULL,
    courseid BIGINT,
    relateduserid BIGINT,
    anonymous SMALLINT NOT NULL DEFAULT 0,
    other TEXT,
    timecreated BIGINT NOT NULL,
    origin VARCHAR(10),
    ip VARCHAR(45),
    realuserid BIGINT
);
CREATE INDEX mdl_logsstanlog_tim_ix ON mdl_logstore_standard_log (timecreated);
CREATE INDEX mdl_logsstanlog_couanytim_ix
    ON mdl_logstore_standard_log (courseid, anonymous, timecreated);
CREATE INDEX mdl_logsstanlog_con_ix ON mdl_logstore_standard_log (contextid);
"""

USERS = [  # id, username, idnumber, deleted
    (1, "guest", "", 0),
    (2, "admin", "", 0),
    (3, "tutor1", "E5000001", 0),
    (10, "ab1001", "S1000001", 0),
    (11, "ab1002", "S1000002", 0),
    (12, "ab1003", "S1000003", 0),
    (13, "cd2001", "", 0),  # a student nobody gave an idnumber
    (14, "old.ab1009", "S1000009", 1),  # deleted
    (15, "ef3001", "jo smith@uni", 0),  # malformed idnumber
]
COURSES = [(1, "LEAP Moodle", "site"), (2, "PHYS101", "topics"), (3, "MATH201", "weeks")]

T0 = int(datetime(2026, 10, 20, 9, 0, tzinfo=UTC).timestamp())
VIEWED = ("\\core\\event\\course_viewed", "core", "viewed", "course", "r")
MODULE_VIEWED = (
    "\\mod_resource\\event\\course_module_viewed",
    "mod_resource",
    "viewed",
    "course_module",
    "r",
)
SUBMITTED = (
    "\\mod_assign\\event\\assessable_submitted",
    "mod_assign",
    "submitted",
    "assessable",
    "u",
)
POSTED = ("\\mod_forum\\event\\post_created", "mod_forum", "created", "post", "c")
QUIZ = ("\\mod_quiz\\event\\attempt_submitted", "mod_quiz", "submitted", "attempt", "u")
FEEDBACK = (
    "\\mod_feedback\\event\\response_submitted",
    "mod_feedback",
    "submitted",
    "response",
    "c",
)
CREATED = ("\\core\\event\\course_module_created", "core", "created", "course_module", "c")
GRADED = ("\\core\\event\\user_graded", "core", "graded", "user", "u")
LOGGEDIN = ("\\core\\event\\user_loggedin", "core", "loggedin", "user", "r")

# id, event, edulevel, userid, courseid, origin, realuserid, anonymous
LOG = [
    (1, LOGGEDIN, 0, 2, 0, "web", None, 0),  # admin logs in: not a student action
    (5, VIEWED, 2, 10, 2, "web", None, 0),  # kept
    (6, MODULE_VIEWED, 2, 10, 2, "web", None, 0),  # kept
    (7, CREATED, 1, 3, 2, "web", None, 0),  # the tutor teaching
    (9, GRADED, 1, 3, 3, "web", None, 0),  # the tutor marking
    (12, VIEWED, 2, 11, 3, "web", 2, 0),  # admin "logged in as" a student
    (13, SUBMITTED, 2, 11, 3, "cli", None, 0),  # cron
    (14, POSTED, 2, 11, 3, "restore", None, 0),  # a course restore replaying posts
    (20, SUBMITTED, 2, 11, 3, "ws", None, 0),  # kept: the mobile app
    (21, POSTED, 2, 11, 3, "web", None, 0),  # kept
    (30, VIEWED, 2, 13, 2, "web", None, 0),  # unmapped: no idnumber
    (31, VIEWED, 2, 15, 2, "web", None, 0),  # unmapped: malformed idnumber
    (33, FEEDBACK, 2, 12, 2, "web", None, 1),  # anonymous feedback
    (40, VIEWED, 2, 12, 1, "web", None, 0),  # kept: the front page, no course
    (41, QUIZ, 2, 12, 2, "web", None, 0),  # kept
    (45, VIEWED, 2, 0, 1, "web", None, 0),  # not logged in
    (50, VIEWED, 2, 1, 2, "web", None, 0),  # the guest user
    (52, VIEWED, 2, 14, 2, "web", None, 0),  # unmapped: deleted user
    (60, SUBMITTED, 2, 12, 2, "cli", None, 0),  # cron again, last id of the log
]
EXPECTED_EVENTS = {
    5: "S1000001",
    6: "S1000001",
    20: "S1000002",
    21: "S1000002",
    40: "S1000003",
    41: "S1000003",
}
EXPECTED_UNMAPPED = [30, 31, 52]
COURSE_OF = {2: "PHYS101", 3: "MATH201", 1: None}


def log_row(
    log_id: int,
    event: tuple[str, ...],
    edulevel: int,
    userid: int,
    courseid: int,
    origin: str,
    realuserid: int | None,
    anonymous: int,
) -> tuple[Any, ...]:
    eventname, component, action, target, crud = event
    contextlevel = 50 if courseid > 1 else 10
    return (
        log_id,
        eventname,
        component,
        action,
        target,
        crud,
        edulevel,
        100 + courseid,
        contextlevel,
        courseid,
        userid,
        courseid,
        anonymous,
        "N;",
        T0 + 60 * log_id,
        origin,
        "10.0.0.7",
        realuserid,
    )


async def insert_log(connection: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    await connection.executemany(
        """
        INSERT INTO mdl_logstore_standard_log (id, eventname, component, action, target, crud,
            edulevel, contextid, contextlevel, contextinstanceid, userid, courseid, anonymous,
            other, timecreated, origin, ip, realuserid)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
        """,
        [log_row(*row) for row in rows],
    )


async def fill_moodle(connection: asyncpg.Connection) -> None:
    """Moodle's tables with the users, courses and log above."""
    await connection.execute(MOODLE_DDL)
    await connection.executemany(
        "INSERT INTO mdl_user (id, username, idnumber, deleted) VALUES ($1, $2, $3, $4)", USERS
    )
    await connection.executemany(
        "INSERT INTO mdl_course (id, shortname, format) VALUES ($1, $2, $3)", COURSES
    )
    await insert_log(connection, LOG)


@pytest.fixture
async def moodle(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(postgres_dsn)
    try:
        await fill_moodle(connection)
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    settings = Settings(  # type: ignore[call-arg]
        kafka_bootstrap=kafka_bootstrap,
        partitions=3,
        activity_topic=f"{topic_prefix}leap.activity",
        dead_letter_topic=f"{topic_prefix}leap.dead-letter",
        indicator_changes_topic=f"{topic_prefix}leap.indicator-changes",
        cohort_scores_topic=f"{topic_prefix}leap.cohort-scores",
    )
    await ensure_topics(settings)
    return settings


def config(postgres_dsn: str, **overrides: Any) -> MoodleConfig:
    return MoodleConfig(dsn=postgres_dsn, site="test", batch_size=4, **overrides)


async def run_once(
    settings: Settings, config: MoodleConfig, checkpoints: type[Checkpoints] = Checkpoints
) -> MoodleSummary:
    async with run_poller(settings, config, checkpoints) as poller:
        return await poller.run_once()


async def read_topic(settings: Settings, topic: str) -> list[ConsumerRecord]:
    """Every record on ``topic`` now, by partition and offset."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def events(settings: Settings) -> list[tuple[bytes, dict[str, Any]]]:
    codec = activity_codec()
    records = await read_topic(settings, settings.activity_topic)
    return [(r.key, codec.decode(r.value)) for r in records]


async def checkpoint(postgres_dsn: str, connector: str = "moodle:test") -> int | None:
    connection = await asyncpg.connect(postgres_dsn)
    try:
        return await connection.fetchval(
            "SELECT position FROM leap.connector_checkpoints WHERE connector = $1", connector
        )
    finally:
        await connection.close()


async def test_publishes_exactly_the_students_engagement(
    moodle: asyncpg.Connection, postgres_dsn: str, settings: Settings
) -> None:
    summary = await run_once(settings, config(postgres_dsn))

    assert (summary.read, summary.published, dict(summary.rejected)) == (9, 6, {"unmapped_user": 3})
    published = await events(settings)
    by_log_id = {int(e["event_id"].rsplit(":", 1)[1]): (key, e) for key, e in published}
    assert len(published) == 6
    assert {i: e["student_id"] for i, (_, e) in by_log_id.items()} == EXPECTED_EVENTS
    for log_id, (key, event) in by_log_id.items():
        row = next(r for r in LOG if r[0] == log_id)
        eventname, component, action, target, crud = row[1]
        assert key == event["student_id"].encode()
        assert event["event_id"] == f"moodle:test:{log_id}"
        assert (event["source"], event["action"], event["quantity"]) == ("moodle", action, 1.0)
        assert event["occurred_at"] == datetime.fromtimestamp(T0 + 60 * log_id, UTC)
        assert event["course_id"] == COURSE_OF[row[4]]
        assert event["attributes"] == {
            "eventname": eventname,
            "component": component,
            "target": target,
            "crud": crud,
        }
        assert event["received_at"] > datetime.now(UTC) - timedelta(minutes=5)

    dead = await read_topic(settings, settings.dead_letter_topic)
    assert sorted(json.loads(r.value)["log_id"] for r in dead) == EXPECTED_UNMAPPED
    for record in dead:
        headers = dict(record.headers)
        assert headers["leap-reason"] == b"unmapped_user"
        assert (
            headers["leap-origin"] == f"moodle:test:{json.loads(record.value)['log_id']}".encode()
        )
    assert await checkpoint(postgres_dsn) == 60  # past the filtered rows at the end, too

    again = await run_once(settings, config(postgres_dsn))
    assert (again.read, again.published, again.rejected.total()) == (0, 0, 0)
    assert len(await events(settings)) == 6
    assert len(await read_topic(settings, settings.dead_letter_topic)) == 3


async def test_usernames_can_be_the_student_ids(
    moodle: asyncpg.Connection, postgres_dsn: str, settings: Settings
) -> None:
    summary = await run_once(settings, config(postgres_dsn, user_field="username"))

    assert (summary.published, dict(summary.rejected)) == (8, {"unmapped_user": 1})
    assert {e["student_id"] for _, e in await events(settings)} == {
        "ab1001",
        "ab1002",
        "ab1003",
        "cd2001",
        "ef3001",
    }


class CrashOnce(Checkpoints):
    """Dies once right after the broker acknowledged a batch: the worst moment to crash."""

    crash_at = 66

    async def save(self, connector: str, position: int) -> None:
        if position == CrashOnce.crash_at:
            CrashOnce.crash_at = -1
            raise ConnectionResetError("checkpoint store went away")
        await super().save(connector, position)


async def test_a_crash_before_the_checkpoint_resends_that_batch_only(
    moodle: asyncpg.Connection, postgres_dsn: str, settings: Settings
) -> None:
    await run_once(settings, config(postgres_dsn))
    before = [e["event_id"] for _, e in await events(settings)]
    # New activity after the catch-up, two batches: 61-64 (checkpointed), 65-66 (crash).
    await insert_log(moodle, [(61 + i, VIEWED, 2, 10 + i % 3, 2, "web", None, 0) for i in range(6)])
    CrashOnce.crash_at = 66
    with pytest.raises(ConnectionResetError):
        await run_once(settings, config(postgres_dsn), CrashOnce)
    crashed = [e["event_id"] for _, e in await events(settings)]
    assert sorted(crashed) == sorted([*before, *(f"moodle:test:{61 + i}" for i in range(6))])
    assert await checkpoint(postgres_dsn) == 64

    resumed = await run_once(settings, config(postgres_dsn), CrashOnce)

    assert (resumed.read, resumed.published) == (2, 2)
    assert await checkpoint(postgres_dsn) == 66
    after = [e["event_id"] for _, e in await events(settings)]
    assert sorted(after) == sorted([*crashed, "moodle:test:65", "moodle:test:66"])


async def test_follow_publishes_new_rows_until_stopped(
    moodle: asyncpg.Connection, postgres_dsn: str, settings: Settings
) -> None:
    stop = asyncio.Event()
    async with run_poller(settings, config(postgres_dsn, poll_interval=0.1)) as poller:
        following = asyncio.create_task(poller.follow(stop))
        await wait_for_events(settings, 6)
        await insert_log(moodle, [(70, QUIZ, 2, 11, 3, "web", None, 0)])
        published = await wait_for_events(settings, 7)
        stop.set()
        summary = await asyncio.wait_for(following, 10)

    assert published[-1]["event_id"] == "moodle:test:70"
    assert (summary.published, summary.position) == (7, 70)
    assert await checkpoint(postgres_dsn) == 70


async def wait_for_events(settings: Settings, count: int) -> list[dict[str, Any]]:
    """The events on the topic once there are ``count``, in log id order."""
    for _ in range(100):
        found = [e for _, e in await events(settings)]
        if len(found) >= count:
            return sorted(found, key=lambda e: int(e["event_id"].rsplit(":", 1)[1]))
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} events expected, {len(found)} published")


async def test_the_cli_catches_up_and_reports(
    moodle: asyncpg.Connection, postgres_dsn: str, settings: Settings
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAP_")}
    env.update(
        LEAP_KAFKA_BOOTSTRAP=settings.kafka_bootstrap,
        LEAP_PARTITIONS="3",
        LEAP_ACTIVITY_TOPIC=settings.activity_topic,
        LEAP_DEAD_LETTER_TOPIC=settings.dead_letter_topic,
        LEAP_INDICATOR_CHANGES_TOPIC=settings.indicator_changes_topic,
        LEAP_COHORT_SCORES_TOPIC=settings.cohort_scores_topic,
        LEAP_MOODLE_DSN=postgres_dsn,
        LEAP_MOODLE_SITE="test",
    )
    command = "from connectors.moodle_cli import moodle_app; moodle_app()"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", command, "run", "--batch-size", "3",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    output = stderr.decode()

    assert process.returncode == 0, output
    assert "read 9, published 6, rejected 3; position 60" in output
    assert "rejected unmapped_user: 3" in output
    assert len(await events(settings)) == 6
