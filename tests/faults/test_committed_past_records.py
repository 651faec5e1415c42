"""A consumer group offset committed past records never processed (faust-streaming #606).

faust-streaming can commit offsets past records it dropped around a rebalance; the kill -9
and rebalance tests caught it losing day records. This test makes that happen on purpose:
with the worker stopped, the group's committed offsets on ``leap.activity`` are moved to the
end of the topic, past a whole chunk of events the worker never saw. Started again, Faust
seeks there; the worker's own positions (``streams/sequence.py``) must notice the hole, send
the consumer back, and count every event: the oracle check passes and
``leap_worker_offset_rewinds_total`` says it happened.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from tests.faults.harness import Worker, check_against_oracle, make_cohort, wait_all_closed
from tests.integration.leap_process import run_leap, wait_for
from tests.integration.test_pipeline import services

pytestmark = pytest.mark.integration
__all__ = ["services"]  # a fixture, used by name


async def _commit_at_end(
    bootstrap: list[str], group: str, topic: str, partitions: int
) -> dict[int, int]:
    """Commit the group's offsets at the end of every partition of ``topic``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: OffsetAndMetadata(end, "") for tp, end in ends.items()})
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


def test_records_committed_but_never_processed_are_read_again(
    tmp_path: Path, services: dict[str, str], topic_prefix: str
) -> None:
    cohort = make_cohort(tmp_path, services, topic_prefix, students=120, days=4, chunks=2)
    worker = Worker(cohort, "worker")
    settings = cohort.settings
    with worker:
        worker.start()
        run_leap(["import", "events", str(cohort.chunks[0]), "--ticks"], worker.env, tmp_path)
        first = sum(1 for line in cohort.chunks[0].open() if line.strip())
        wait_for(lambda: worker.handled() >= first, 60, "the first chunk counted", worker.log)
        worker.stop()  # a clean stop: Faust commits what it processed

        # The second chunk arrives while the worker is down, and the group's offsets are
        # then committed past it, as Faust's gap handling can do.
        run_leap(["import", "events", str(cohort.chunks[1]), "--ticks"], worker.env, tmp_path)
        committed = asyncio.run(
            _commit_at_end(
                settings.bootstrap_servers,
                settings.app_id,
                settings.activity_topic,
                settings.partitions,
            )
        )
        assert sum(committed.values()) > first
        # Then only the clock moves on (no events): the days close once the worker is back.
        nothing = tmp_path / "no-events.jsonl"
        nothing.write_text("")
        until = cohort.until.isoformat()
        run_leap(
            ["import", "events", str(nothing), "--ticks", "--until", until], worker.env, tmp_path
        )

        worker.start()
        states = wait_all_closed(cohort, [worker.log])
        rewinds = sum(
            s.value for s in worker.metrics() if s.name == "leap_worker_offset_rewinds_total"
        )
    figures = check_against_oracle(cohort, states)
    assert figures.counted == figures.produced
    assert rewinds >= 1
