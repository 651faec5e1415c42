"""``streams.table_batch.TableBatch`` against real Kafka: what its record batches put there.

A batch hands each changelog partition's records to aiokafka as record batches (not one
send per record). What recovery relies on is checked on the topic itself: every record on
its partition, in the order it was set, decodable with the table's own serializers, and
acknowledged by the time ``commit`` returns; the store told the last offset written per
partition; and a record the producer sends on its own after the batch lands after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest
from faust.serializers import codecs

from streams.table_batch import TableBatch
from tests.integration.changelog_topic import create_topic, read_partitions

pytestmark = pytest.mark.integration

PARTITIONS = 3


@pytest.fixture
async def app(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[faust.App]:
    app = faust.App(
        f"{topic_prefix}tablebatch",
        broker=f"kafka://{kafka_bootstrap}",
        store="memory://",
        key_serializer="json",
        producer_acks=-1,
        # Small, so one partition's records spill over several record batches.
        producer_max_batch_size=512,
    )
    await app.producer.start()
    yield app
    await app.producer.stop()


async def _table(app: faust.App, name: str, bootstrap: str) -> Any:
    table = app.Table(name, partitions=PARTITIONS)
    await create_topic(bootstrap, table.changelog_topic.get_topic_name(), PARTITIONS)
    return table


async def _changelog(bootstrap: str, topic: str) -> dict[int, list[tuple[int, Any, Any]]]:
    """Every record of the topic by partition: (offset, key, value), decoded as Faust does."""
    found = await read_partitions(bootstrap, topic, PARTITIONS)
    return {
        partition: [
            (r.offset, codecs.loads("json", r.key), codecs.loads("json", r.value)) for r in records
        ]
        for partition, records in found.items()
    }


async def test_each_partitions_records_land_in_order_and_acked(
    app: faust.App, kafka_bootstrap: str
) -> None:
    table = await _table(app, "totals", kafka_bootstrap)
    topic = table.changelog_topic.get_topic_name()
    persisted: dict[int, int] = {}
    table.data.set_persisted_offset = lambda tp, offset: persisted.__setitem__(tp.partition, offset)

    expected: dict[int, list[tuple[Any, Any]]] = {p: [] for p in range(PARTITIONS)}
    for round_ in range(2):
        writes = TableBatch(table)
        for n in range(60):
            key, value = f"S{n}|2026-10-0{round_ + 1}", {"s": {"moodle": n}, "ids": ["x" * 20]}
            writes.set(key, value, n % PARTITIONS)
            expected[n % PARTITIONS].append((key, value))
        writes.set(7, 1234, 1)  # an int key too, as the positions tables have
        expected[1].append((7, 1234))
        await writes.commit()
        assert not writes.pending
        await writes.commit()  # nothing pending: nothing sent

    # A record sent through the producer's own path after the batch comes after it.
    await app.producer.send_and_wait(
        topic, b'"after"', b"1", partition=0, timestamp=None, headers=None
    )
    expected[0].append(("after", 1))

    found = await asyncio.wait_for(_changelog(kafka_bootstrap, topic), 30)
    for partition in range(PARTITIONS):
        assert [(k, v) for _, k, v in found[partition]] == expected[partition]
    # The store was told the offset of the last record each batch wrote (not the later
    # record sent on its own).
    assert persisted == {
        0: found[0][-2][0],
        1: found[1][-1][0],
        2: found[2][-1][0],
    }
    assert table.data["S59|2026-10-02"] == {"s": {"moodle": 59}, "ids": ["x" * 20]}
    assert table.data[7] == 1234
