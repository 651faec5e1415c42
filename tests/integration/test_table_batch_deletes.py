"""``TableBatch.delete`` against real Kafka: its tombstones are Faust's own, and a table
recovered from the changelog has the deleted keys gone.

The changelog is read back raw: a deleted key's record must carry the same key bytes as
Faust's ``del table[key]`` sends and a null value (what compaction and every store's
``apply_changelog_batch`` take as a deletion), in order with the batch's writes. Then a
fresh table of the same name is rebuilt from those records through Faust's own decode and
``apply_changelog_batch``, as recovery does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
import pytest
from aiokafka import ConsumerRecord
from faust.types import EventT, Message

from streams.current_event import processing
from streams.table_batch import TableBatch
from tests.integration.changelog_topic import create_topic, read_partitions

pytestmark = pytest.mark.integration

PARTITIONS = 2
SOURCE_TOPIC = "test.source"


class _Event:
    """What a table write through Faust's own path needs of the current event."""

    def __init__(self, partition: int) -> None:
        self.message = Message(SOURCE_TOPIC, partition, 0, 0.0, 0, None, None, None, None)


def _app(kafka_bootstrap: str, name: str) -> faust.App:
    return faust.App(
        name,
        broker=f"kafka://{kafka_bootstrap}",
        store="memory://",
        key_serializer="json",
        producer_acks=-1,
    )


@pytest.fixture
async def app(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[faust.App]:
    app = _app(kafka_bootstrap, f"{topic_prefix}tabledel")
    await app.producer.start()
    yield app
    await app.producer.stop()


async def _table(app: faust.App, bootstrap: str, *, create: bool) -> Any:
    table = app.Table("totals", partitions=PARTITIONS)
    table._verified_source_topics_for_partitions.add(SOURCE_TOPIC)
    if create:
        await create_topic(bootstrap, table.changelog_topic.get_topic_name(), PARTITIONS)
    return table


async def _records(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of the topic, raw, partition by partition in offset order."""
    found = await read_partitions(bootstrap, topic, PARTITIONS)
    return [r for p in range(PARTITIONS) for r in found[p]]


async def test_deletions_are_faust_tombstones_and_recovery_drops_the_keys(
    app: faust.App, kafka_bootstrap: str, topic_prefix: str
) -> None:
    table = await _table(app, kafka_bootstrap, create=True)
    topic = table.changelog_topic.get_topic_name()
    writes = TableBatch(table)
    for n in range(6):
        writes.set(f"S{n}|2026-10-01", {"s": {"moodle": n}}, n % PARTITIONS)
    writes.set("nothing", None, 0)  # a None value is a value, as in Faust, not a deletion
    await writes.commit()

    purge = TableBatch(table)
    for n in (0, 1, 3):
        purge.delete(f"S{n}|2026-10-01", n % PARTITIONS)
    purge.delete("S4|2026-10-01", 0)
    purge.set("S4|2026-10-01", {"s": {"moodle": 40}}, 0)  # deleted, then set again: kept
    purge.set("S5|2026-10-01", {"s": {"moodle": 50}}, 1)
    purge.delete("S5|2026-10-01", 1)  # set, then deleted: gone
    purge.delete("never-set", 1)  # harmless
    await purge.commit()
    assert sorted(table.data.keys()) == ["S2|2026-10-01", "S4|2026-10-01", "nothing"]

    # Faust's own deletion of a key, for comparison.
    with processing(cast(EventT, _Event(0))):
        del table["S2|2026-10-01"]
    await app.producer.flush()

    records = await asyncio.wait_for(_records(kafka_bootstrap, topic), 30)
    tombstones = [(r.partition, r.key) for r in records if r.value is None]
    assert tombstones == [
        (0, b'"S0|2026-10-01"'),
        (0, b'"S4|2026-10-01"'),
        (0, b'"S2|2026-10-01"'),  # Faust's: the same encoding of key and value
        (1, b'"S1|2026-10-01"'),
        (1, b'"S3|2026-10-01"'),
        (1, b'"S5|2026-10-01"'),
        (1, b'"never-set"'),
    ]
    assert [r.value for r in records if r.key == b'"nothing"'] == [b"null"]

    # Recovery: a fresh worker's table rebuilt from the changelog by Faust's own code.
    fresh_app = _app(kafka_bootstrap, f"{topic_prefix}tabledel")
    fresh = await _table(fresh_app, kafka_bootstrap, create=False)
    events = [
        await fresh.changelog_topic.decode(
            Message(
                r.topic,
                r.partition,
                r.offset,
                r.timestamp / 1000,
                r.timestamp_type,
                r.headers,
                r.key,
                r.value,
                r.checksum,
            )
        )
        for r in records
    ]
    fresh.apply_changelog_batch(events)
    assert dict(fresh.data.items()) == {"S4|2026-10-01": {"s": {"moodle": 40}}, "nothing": None}
