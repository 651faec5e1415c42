"""Local state lost (issue 4, scenario 3): a worker whose disk is gone rebuilds from changelogs.

After at least two days have closed, the worker is SIGKILLed, its data dir deleted and it
is started again while events keep streaming. Its tables must come back from their
changelog topics (the events before the last commit are never re-delivered), the recovery
time must be on its /metrics, and the end state must be the oracle's.

The tables live in Faust's memory store (the only one LEAP runs on), which loses them at
every restart anyway; the data dir deleted here holds what Faust keeps beside them.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.faults.harness import (
    START,
    Feeder,
    Worker,
    check_against_oracle,
    make_cohort,
    wait_all_closed,
)
from tests.integration.leap_process import wait_for
from tests.integration.test_pipeline import redis_indicators, services

pytestmark = pytest.mark.integration
__all__ = ["services"]  # a fixture, used by name


def test_worker_without_its_data_dir_rebuilds_from_changelogs(
    tmp_path: Path, services: dict[str, str], topic_prefix: str
) -> None:
    began = time.monotonic()
    cohort = make_cohort(tmp_path, services, topic_prefix, days=5)
    worker = Worker(cohort, "worker")
    feeder = Feeder(cohort, worker.env, gap=1.0, allowed=5)
    second_day = (START + timedelta(days=1)).isoformat()
    with worker:
        worker.start()
        feeder.start()
        feeder.feed_until(
            lambda: (
                (s := redis_indicators(cohort.settings))
                and all(state["as_of"] >= second_day for state in s.values())
            ),
            what=f"indicators as of {second_day}",
            log=worker.log,
        )
        worker.kill()
        assert worker.data_dir.is_dir()
        worker.lose_local_state()
        lost_at = time.monotonic() - began
        feeder.allow(2)  # events sent while it rebuilds its tables
        worker.start()
        recovery = wait_for(
            worker.recovery_seconds, timeout=60, what="the recovery time", log=worker.log
        )
        feeder.finish()
        states = wait_all_closed(cohort, [worker.log])
    figures = check_against_oracle(cohort, states)

    assert recovery > 0
    assert figures.counted == figures.produced
    print(
        f"state loss: {figures}; data dir deleted at {lost_at:.1f} s; "
        f"leap_worker_table_recovery_seconds {recovery:.2f}; "
        f"{time.monotonic() - began:.1f} s in all"
    )
