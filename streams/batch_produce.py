"""Producing many keyed records at once: one aiokafka record batch per partition.

A day close publishes a cohort-score report per cohort and partition, and banding up to
one ``IndicatorChange`` per student. Faust's ``Topic.send`` costs ~380 µs of CPU a record
(measured, bench/day_close.py: its futures, callbacks and buffer); this hands the records
to Faust's own aiokafka producer as one record batch per partition
(``create_batch``/``send_batch``), ~6 µs a record. Each record goes where Kafka's
default partitioner would put its key (murmur2, ``leap.reference.partition_for``), so a
key's records keep one partition, and their order, whichever way they were produced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata
from faust.types import AppT

from leap.reference import partition_for

__all__ = ["send_by_key"]


async def send_by_key(
    app: AppT, topic: str, records: Sequence[tuple[str, bytes]]
) -> list[asyncio.Future[RecordMetadata]]:
    """Queue ``(key, value)`` records on ``topic``, keyed by the key's UTF-8 bytes;
    returns the futures of their batches, to await for the broker's acknowledgement."""
    if not records:
        return []
    # Faust's aiokafka driver keeps the AIOKafkaProducer its own send() goes through.
    producer: AIOKafkaProducer = app.producer._ensure_producer()  # type: ignore[attr-defined]
    partitions = len(await producer.partitions_for(topic))
    batches: dict[int, BatchBuilder] = {}
    sent: list[asyncio.Future[RecordMetadata]] = []
    for text_key, value in records:
        key = text_key.encode()
        partition = partition_for(text_key, partitions)
        batch = batches.get(partition)
        if batch is None:
            batch = batches[partition] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            # Full (producer_max_batch_size): send it; the next takes at least this record.
            sent.append(await _send(producer, batch, topic, partition))
            batch = batches[partition] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
    for partition, batch in batches.items():
        sent.append(await _send(producer, batch, topic, partition))
    return sent


async def _send(
    producer: AIOKafkaProducer, batch: BatchBuilder, topic: str, partition: int
) -> asyncio.Future[RecordMetadata]:
    batch.close()  # else the producer's own send() may add other records to it
    return await producer.send_batch(batch, topic, partition=partition)
