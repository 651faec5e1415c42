"""kill -9 (issue 4, scenario 1): a worker killed at random moments loses and doubles nothing.

A cohort's events stream in chunk by chunk (``leap import events --ticks``) while the only
worker is SIGKILLed three times, each time at a random moment after it started consuming
(seeded: ``LEAP_TEST_FAULT_SEED`` replays a run), and started again. Killed, it commits
nothing and leaves no group: the next incarnation re-reads from the last commit and must
recognise what the changelog already holds. The end state must be the oracle's
(``harness.check_against_oracle``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.harness import (
    Feeder,
    Worker,
    check_against_oracle,
    fault_rng,
    make_cohort,
    wait_all_closed,
)
from tests.integration.test_pipeline import services

pytestmark = pytest.mark.integration
__all__ = ["services"]  # a fixture, used by name

ROUNDS = 3


def test_worker_killed_at_random_moments_counts_each_event_once(
    tmp_path: Path, services: dict[str, str], topic_prefix: str
) -> None:
    began = time.monotonic()
    rng, seed = fault_rng("kill -9")
    cohort = make_cohort(tmp_path, services, topic_prefix, students=200, days=5, chunks=10)
    worker = Worker(cohort, "worker")
    feeder = Feeder(cohort, worker.env, gap=1.5, allowed=2)
    kills = []
    with worker:
        worker.start()
        feeder.start()
        for _ in range(ROUNDS):
            worker.wait_handling(feeder)
            delay = rng.uniform(0.0, 2.5)
            time.sleep(delay)
            handled = worker.handled()
            worker.kill()
            kills.append((round(time.monotonic() - began, 1), round(delay, 2), handled))
            feeder.allow(1)  # events sent while it is down, for the next incarnation
            worker.start()
        feeder.finish()
        states = wait_all_closed(cohort, [worker.log])
        recovery = worker.recovery_seconds()
    figures = check_against_oracle(cohort, states)

    assert figures.counted == figures.produced
    print(
        f"kill -9, seed {seed}: {figures}; kills (s since start, s after consuming began, "
        f"events taken by that incarnation): {kills}; last recovery {recovery} s; "
        f"{time.monotonic() - began:.1f} s in all"
    )
