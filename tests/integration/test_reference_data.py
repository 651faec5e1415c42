"""Reference data and opt-outs on compacted topics, followed by a running worker (issue 5).

``leap reference load`` makes the topic hold exactly an export (reloading sends nothing; a
removed student is tombstoned). A ``leap worker`` with no ``LEAP_STUDENTS`` scores the
students in scope on that topic, follows changes made while it runs, and marks the
IndicatorChanges of students who opted out of contact with ``contact_allowed=false``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from connectors.synthetic import make_students, write_students
from leap.compacted import CompactedTopic
from leap.contact import contact_record
from leap.reference import Student
from leap.settings import Settings
from schemas.codec import indicator_change_codec
from tests.integration.leap_process import leap_running, run_leap, wait_for
from tests.integration.test_pipeline import (
    GRACE,
    START,
    ZONE,
    build_pipeline,
    read_topic,
    redis_indicators,
    replay,
    services,
)

pytestmark = pytest.mark.integration
__all__ = ["services"]  # a fixture, used by name

DAYS = 3
LAST = START + timedelta(days=DAYS - 1)


def _topic_state(settings: Settings) -> dict[str, dict[str, Any]]:
    state: dict[str, dict[str, Any]] = {}

    def keep(key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value

    asyncio.run(
        CompactedTopic(settings.bootstrap_servers, settings.reference_students_topic, keep).load()
    )
    return state


def _load(p_env: dict[str, str], csv: Path, workdir: Path) -> dict[str, int]:
    out = run_leap_stderr(["reference", "load", str(csv)], p_env, workdir)
    found = re.search(r"(\d+) added, (\d+) changed, (\d+) unchanged, (\d+) removed", out)
    assert found, out
    return dict(
        zip(("added", "changed", "unchanged", "removed"), map(int, found.groups()), strict=True)
    )


def run_leap_stderr(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """What ``leap ARGS`` told its operator (on stderr, where LEAP's summaries go)."""
    done = subprocess.run(
        [sys.executable, "-m", "leap.cli", *args], env=env, cwd=cwd, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


async def _opt_out(settings: Settings, *student_ids: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for sid in student_ids:
            record = contact_record(sid, False, "admin", datetime.now(UTC))
            await producer.send_and_wait(
                settings.contact_preferences_topic, json.dumps(record).encode(), sid.encode()
            )
    finally:
        await producer.stop()


def test_reference_topic_scope_and_opt_out_followed_by_a_running_worker(
    tmp_path: Path, services: dict[str, str], topic_prefix: str
) -> None:
    p = build_pipeline(tmp_path, services, topic_prefix, "event", START, DAYS, False)
    p.env.pop("LEAP_STUDENTS")
    settings = p.settings.model_copy(update={"students": None})
    cohort = make_students(250, seed=11)
    outsiders = [
        Student("S7000001", "BSC-CS", 1, "full-time", "Computing", "TCS1"),  # cohort not in scope
        dataclasses.replace(cohort[0], student_id="S7000002", status="interrupted"),
    ]
    export = tmp_path / "export.csv"
    write_students([*cohort, *outsiders], export)

    # Loading is idempotent, and the topic holds exactly the export.
    assert _load(p.env, export, tmp_path) == {
        "added": len(cohort) + 2,
        "changed": 0,
        "unchanged": 0,
        "removed": 0,
    }
    assert _load(p.env, export, tmp_path) == {
        "added": 0,
        "changed": 0,
        "unchanged": len(cohort) + 2,
        "removed": 0,
    }
    assert set(_topic_state(settings)) == {s.student_id for s in [*cohort, *outsiders]}

    opted_out_before = cohort[1].student_id
    asyncio.run(_opt_out(settings, opted_out_before))
    newcomer = dataclasses.replace(cohort[2], student_id="S7000003")
    until = datetime.combine(LAST, time(0), ZONE) + GRACE  # closes every day but the last
    with leap_running(["worker", "--loglevel", "warning"], p.env, p.worker_log):
        run_leap(
            ["import", "events", str(p.events_file), "--ticks", "--until", until.isoformat()],
            p.env,
            p.workdir,
        )
        first = LAST - timedelta(days=1)
        wait_for(
            lambda: (
                (s := redis_indicators(settings))
                and sum(v["as_of"] == first.isoformat() for v in s.values()) == len(cohort)
                and s
            ),
            timeout=90,
            what=f"indicators as of {first}",
            log=p.worker_log,
        )
        # While it runs: one student leaves, one arrives (and opts out at once).
        leaver = cohort[3]
        write_students([*[s for s in cohort if s is not leaver], *outsiders, newcomer], export)
        assert _load(p.env, export, tmp_path) == {
            "added": 1,
            "changed": 0,
            "unchanged": len(cohort) + 1,
            "removed": 1,
        }
        asyncio.run(_opt_out(settings, newcomer.student_id))
        final = datetime.combine(LAST + timedelta(days=1), time(0), ZONE) + GRACE
        run_leap(
            ["import", "events", str(p.events_file), "--ticks", "--until", final.isoformat()],
            p.env,
            p.workdir,
        )
        states = wait_for(
            lambda: (
                (s := redis_indicators(settings))
                and newcomer.student_id in s
                and s[newcomer.student_id]["as_of"] == LAST.isoformat()
                and s
            ),
            timeout=90,
            what=f"the newcomer's indicator as of {LAST}",
            log=p.worker_log,
        )
        changes = [
            indicator_change_codec().decode(m.value)
            for m in asyncio.run(read_topic(settings, settings.indicator_changes_topic))
        ]

    # Out of scope and exempt students are processed but get no indicator.
    assert "S7000001" not in states and "S7000002" not in states
    # The leaver is no longer scored: their last indicator is the day before they left.
    assert states[leaver.student_id]["as_of"] == first.isoformat()
    # Everyone in scope now equals replay as of the last day over the roster now.
    roster_now = tmp_path / "roster-now.csv"
    write_students([s for s in cohort if s is not leaver] + [newcomer], roster_now)
    expected = replay(dataclasses.replace(p, students_csv=roster_now), LAST)
    assert newcomer.student_id in expected and leaver.student_id not in expected
    for sid, want in expected.items():
        assert states[sid]["indicator"] == want["indicator"], sid
        assert float(states[sid]["score"]) == want["score"], sid
    # Opt-outs: before start, and one made while running, both reach the changes.
    by_student: dict[str, list[dict[str, Any]]] = {}
    for change in changes:
        by_student.setdefault(change["student_id"], []).append(change)
    assert by_student[opted_out_before] and all(
        not c["contact_allowed"] for c in by_student[opted_out_before]
    )
    assert [c["contact_allowed"] for c in by_student[newcomer.student_id]] == [False]
    assert all(
        c["contact_allowed"]
        for sid, cs in by_student.items()
        if sid not in (opted_out_before, newcomer.student_id)
        for c in cs
    )
