"""Reading a compacted topic as a table: its current state, then its changes as they come.

Reference data (students, contact preferences) lives on compacted topics keyed by student
id, so any number of workers and API processes can each hold the whole of it without a
database: read from the beginning to the end offsets seen at start (``load``), then keep
applying what arrives (``follow``). A record with no value (a tombstone) deletes its key.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

__all__ = ["CompactedTopic"]

log = logging.getLogger(__name__)

#: Half-second tries to see a just-created topic's partitions in the metadata.
METADATA_ATTEMPTS = 20

#: Applies one record: (key, decoded JSON value or None for a tombstone).
Apply = Callable[[str, dict[str, Any] | None], None]


class CompactedTopic:
    def __init__(self, bootstrap_servers: list[str], topic: str, apply: Apply) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.apply = apply
        self.positions: dict[TopicPartition, int] = {}

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            group_id=None,  # every reader holds the whole topic
        )

    async def load(self) -> int:
        """Apply every record up to the end offsets seen now; returns how many."""
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = await self._partitions(consumer)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            applied = 0
            while await self._behind(consumer, ends):
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        self._apply(record.key, record.value)
                        applied += 1
            self.positions = {tp: await consumer.position(tp) for tp in tps}
            return applied
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """The topic's partitions, waiting a little for a topic created a moment ago."""
        consumer.subscribe([self.topic])  # without a group: every partition, once known
        for _ in range(METADATA_ATTEMPTS):
            assigned = consumer.assignment()
            if assigned:
                return sorted(assigned)
            await asyncio.sleep(0.5)
        raise RuntimeError(
            f"topic {self.topic} has no partitions on {','.join(self.bootstrap_servers)}: "
            "create it (any leap command that starts does) or check LEAP_KAFKA_BOOTSTRAP"
        )

    @staticmethod
    async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return True
        return False

    async def follow(self) -> None:
        """Apply records after ``load``'s end, forever (run it as a background task)."""
        consumer = self._consumer()
        await consumer.start()
        try:
            consumer.assign(list(self.positions))
            for tp, offset in self.positions.items():
                consumer.seek(tp, offset)
            async for record in consumer:
                self._apply(record.key, record.value)
        finally:
            await consumer.stop()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if not key:
            log.warning("%s: a record without a key is ignored", self.topic)
            return
        try:
            decoded = json.loads(value) if value is not None else None
            self.apply(key.decode(), decoded)
        except (ValueError, KeyError, TypeError) as exc:
            # One bad record must not stop reference data: keep the last good value.
            log.error("%s: record for %r ignored: %s", self.topic, key, exc)
