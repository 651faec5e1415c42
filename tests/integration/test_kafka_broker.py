"""The session's Kafka broker really stores and serves records across partitions."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration

COUNT = 100
PARTITIONS = 3


async def test_round_trip_over_three_partitions(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}round-trip"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()

    sent = {f"k{i:03d}".encode(): f"v{i}".encode() for i in range(COUNT)}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        results = [await producer.send(topic, value, key=key) for key, value in sent.items()]
        await asyncio.gather(*results)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}group",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    partitions: set[int] = set()
    try:
        async with asyncio.timeout(30):
            while len(received) < COUNT:
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, records in batches.items():
                    partitions.add(tp.partition)
                    received.extend((r.key, r.value) for r in records)
    finally:
        await consumer.stop()

    assert len(received) == COUNT
    assert dict(received) == sent
    assert partitions == set(range(PARTITIONS))
