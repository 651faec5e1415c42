"""Rebalance (issue 4, scenario 2): one worker, then two, then one again, events streaming.

On an 8-partition topic, worker A runs alone; B joins the group (same app id, its own data
dir and web port) and takes some partitions, counting and committing their events; then B
stops and A takes them back. The events B committed are never re-delivered, so A's final
indicators for B's students are right only if A rebuilt B's table partitions from their
changelogs. The end state must be the oracle's (``harness.check_against_oracle``).
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
from tests.integration.leap_process import wait_for
from tests.integration.test_pipeline import services

pytestmark = pytest.mark.integration
__all__ = ["services"]  # a fixture, used by name


def test_one_two_one_workers_give_the_oracle_result(
    tmp_path: Path, services: dict[str, str], topic_prefix: str
) -> None:
    began = time.monotonic()
    rng, seed = fault_rng("rebalance")
    cohort = make_cohort(tmp_path, services, topic_prefix, partitions=8, days=5, chunks=10)
    a, b = Worker(cohort, "a"), Worker(cohort, "b")
    feeder = Feeder(cohort, a.env, gap=1.5, allowed=4)
    with a, b:
        a.start()
        feeder.start()
        a.wait_handling(feeder)
        b.start()
        b.wait_handling(feeder)  # B is in the group, owns partitions and consumes them
        time.sleep(rng.uniform(1.0, 4.0))
        b_partitions = b.partitions_closed()
        b_counted = sum(
            s.value
            for s in b.metrics()
            if s.name == "leap_worker_events_total" and s.labels["outcome"] == "counted"
        )
        recovered_before = a.recovery_seconds()
        b.stop()
        feeder.allow(2)  # events for A to take on B's partitions once it has them back
        b_left = time.monotonic() - began
        # A's next completed recovery is the one that took B's partitions back.
        recovery = wait_for(
            lambda: (r := a.recovery_seconds()) != recovered_before and r,
            timeout=60,
            what="A to recover B's partitions",
            log=a.log,
        )
        feeder.finish()
        states = wait_all_closed(cohort, [a.log, b.log])
    figures = check_against_oracle(cohort, states)

    assert figures.counted == figures.produced
    assert b_counted > 0, "B never counted an event: there was nothing for A to rebuild"
    assert b_partitions and len(b_partitions) < 8, b_partitions
    print(
        f"rebalance, seed {seed}: {figures}; B counted {b_counted:.0f} events on partitions "
        f"{sorted(b_partitions)} and left at {b_left:.1f} s; A recovered in {recovery:.2f} s; "
        f"{time.monotonic() - began:.1f} s in all"
    )
