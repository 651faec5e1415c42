"""Late data (issue 4): events for closed days amend them; beyond the horizon, dead letters.

Six local days (across the 2026-10-25 clock change) are imported on time with ``--ticks``
into a ``leap worker`` on ``clock=event``, except three held-back sets: events of the last
two days for a third of the students (inside a two-day lateness horizon), events three days
back for a fifth (beyond it), and one partition's students stay silent for a whole day (an
idle partition must not hold the day back). Once every day has closed the held-back sets
arrive. Then, key by key against ``leap replay``:

- Redis holds replay's indicators of the on-time events plus the accepted late ones;
- each student whose indicator as of an amended date changed has a chain of
  ``late_data`` IndicatorChanges for that date from replay's old indicator to its new one,
  and no other as-of date is re-emitted;
- every event beyond the horizon is on the dead-letter topic with ``reason=too_late`` and
  counted as such: counted + late + too late == produced.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from leap.reference import partition_for
from leap.scoring import local_date
from schemas.codec import activity_codec, activity_from_json, indicator_change_codec
from tests.faults.test_poison_input import _metrics
from tests.integration.leap_process import leap_running, run_leap, wait_for
from tests.integration.test_pipeline import (
    ZONE,
    Pipeline,
    build_pipeline,
    import_until_closed,
    read_topic,
    redis_indicators,
    replay,
    services,
    wait_all_closed,
)

pytestmark = pytest.mark.integration
__all__ = ["services"]  # a fixture, used by name

START = date(2026, 10, 21)
DAYS = 6
LAST = START + timedelta(days=DAYS - 1)  # 2026-10-26; 2026-10-25 is 25 hours long
HORIZON = 2
IDLE_DAY = START + timedelta(days=2)
IDLE_PARTITION = 0


def _split(p: Pipeline) -> dict[str, list[str]]:
    """The events file's lines by fate: on time, late (accepted), too late, never sent."""
    fates: dict[str, list[str]] = {"on_time": [], "late": [], "too_late": [], "idle": []}
    for line in p.events_file.read_text().splitlines():
        event = activity_from_json(json.loads(line))
        day = local_date(event["occurred_at"], ZONE)
        index = int(event["student_id"][1:])
        if day == IDLE_DAY and partition_for(event["student_id"], 4) == IDLE_PARTITION:
            fates["idle"].append(line)
        elif day >= LAST - timedelta(days=HORIZON - 1) and index % 3 == 0:
            fates["late"].append(line)
        elif day == LAST - timedelta(days=HORIZON) and index % 5 == 0:
            fates["too_late"].append(line)
        else:
            fates["on_time"].append(line)
    return fates


def _with_events(p: Pipeline, name: str, lines: list[str]) -> Pipeline:
    path = p.workdir / f"{name}.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return replace(p, events_file=path)


def _matches(states: dict[str, dict[str, str]], expected: dict[str, dict[str, Any]]) -> bool:
    return set(states) == set(expected) and all(
        states[sid]["as_of"] == want["as_of"]
        and states[sid]["indicator"] == want["indicator"]
        and float(states[sid]["score"]) == want["score"]
        and float(states[sid]["reference_score"]) == want["reference_score"]
        for sid, want in expected.items()
    )


def test_late_events_amend_closed_days_and_too_late_ones_are_dead_lettered(
    tmp_path: Path, services: dict[str, str], topic_prefix: str
) -> None:
    p = build_pipeline(tmp_path, services, topic_prefix, "event", START, DAYS, False)
    assert p.settings.partitions == 4
    p.env["LEAP_LATENESS_HORIZON_DAYS"] = str(HORIZON)
    settings = p.settings.model_copy(update={"lateness_horizon_days": HORIZON})
    fates = _split(p)
    assert all(fates.values()), {k: len(v) for k, v in fates.items()}
    on_time = _with_events(p, "on-time", fates["on_time"])
    late = _with_events(p, "late", fates["late"] + fates["too_late"])
    amended = _with_events(p, "amended", fates["on_time"] + fates["late"])
    students = set(replay(on_time, LAST))
    url = f"http://127.0.0.1:{settings.worker_web_port}/metrics"

    with leap_running(["worker", "--loglevel", "warning"], p.env, p.worker_log):
        import_until_closed(p, on_time.events_file, LAST)
        before = wait_all_closed(p, LAST, len(students))
        assert _matches(before, replay(on_time, LAST))  # the idle day closed like any other

        run_leap(["import", "events", str(late.events_file)], p.env, p.workdir)
        expected = replay(amended, LAST)
        wait_for(
            lambda: _matches(redis_indicators(settings), expected),
            timeout=60,
            what="Redis amended by the late events",
            log=p.worker_log,
        )
        dead = wait_for(
            lambda: (
                (d := asyncio.run(read_topic(settings, settings.dead_letter_topic)))
                and len(d) >= len(fates["too_late"])
                and d
            ),
            timeout=30,
            what=f"{len(fates['too_late'])} too-late dead letters",
            log=p.worker_log,
        )
        metrics = _metrics(url)
        changes = asyncio.run(read_topic(settings, settings.indicator_changes_topic))

    # Dead letters: exactly the events beyond the horizon, each with its reason.
    assert len(dead) == len(fates["too_late"])
    too_late_ids = {json.loads(line)["event_id"] for line in fates["too_late"]}
    codec = indicator_change_codec()
    activity = activity_codec()
    assert {activity.decode(m.value)["event_id"] for m in dead} == too_late_ids
    for message in dead:
        assert dict(message.headers)["leap-reason"] == b"too_late"

    # Accounting: every event produced was counted on time, counted late, or parked.
    produced = len(fates["on_time"]) + len(fates["late"]) + len(fates["too_late"])
    assert metrics["events:late"] == len(fates["late"])
    assert metrics["events:too_late"] == metrics["dl:too_late"] == len(fates["too_late"])
    assert metrics["events:counted"] + metrics["events:late"] + len(dead) == produced
    assert metrics.get("events:duplicate", 0) == 0

    # Re-emits: for each amended as-of date, a chain from replay's old indicator to its new.
    late_changes: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for message in changes:
        change = codec.decode(message.value)
        if change["reason"] == "late_data":
            key = (change["student_id"], change["as_of"].isoformat())
            late_changes.setdefault(key, []).append(change)
    amended_days = [LAST - timedelta(days=n) for n in range(HORIZON)]
    assert {as_of for _, as_of in late_changes} <= {d.isoformat() for d in amended_days}
    moved = 0
    for as_of in amended_days:
        old, new = replay(on_time, as_of), replay(amended, as_of)
        for sid in students:
            chain = late_changes.get((sid, as_of.isoformat()), [])
            if old[sid]["indicator"] == new[sid]["indicator"] and not chain:
                continue
            moved += 1
            assert chain, (sid, as_of, old[sid]["indicator"], new[sid]["indicator"])
            assert chain[0]["previous_indicator"] == old[sid]["indicator"], (sid, as_of)
            for earlier, later in pairwise(chain):
                assert later["previous_indicator"] == earlier["indicator"], (sid, as_of)
            assert chain[-1]["indicator"] == new[sid]["indicator"], (sid, as_of)
            # No score check on the chain's end: a change is emitted when the indicator
            # moves, and a later batch of late events may move the score alone (how the
            # events fall into batches decides). Redis's final scores were checked above.
    assert moved > 0, "the held-back events should have moved some indicators"
