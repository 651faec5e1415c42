"""Writing many keys of a Faust table at once, with their changelog records awaited.

``Table.__setitem__`` sends one changelog record per key through Faust's producer
buffer (~400 µs of CPU each, measured) and does not wait for it: a commit can overtake a
record still queued. A batch writes the store directly and hands the records to aiokafka
as one record batch per changelog partition (``create_batch``/``send_batch``: one future
and one accumulator entry per partition, not per record), then awaits the broker's
acknowledgement, so the events behind the batch are acked only once their state is
durable. Records keep their order: a partition's batches are queued one after another,
behind anything already queued for it.

A deletion is a tombstone, as ``del table[key]`` sends (``Table.on_key_del``: the key,
value None): recovery drops the key (each store's ``apply_changelog_batch``) and
compaction forgets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata
from faust.serializers import codecs
from faust.stores.memory import Store as MemoryStore
from faust.tables.base import Collection
from faust.types import TP, StoreT, TableT

__all__ = ["DELETED", "TableBatch", "store_reader"]

#: A pending deletion's value (not None: setting a key to None is a write, as in Faust).
DELETED = object()


class TableBatch:
    """Pending writes to one table; ``commit`` sends and awaits them."""

    def __init__(self, table: TableT) -> None:
        self.table = table
        self.topic = table.changelog_topic.get_topic_name()
        collection = cast(Collection, table)  # the concrete class holds the serializers
        self.key_codec = codecs.get_codec(
            collection.key_serializer or table.app.conf.key_serializer
        )
        self.value_codec = codecs.get_codec(
            collection.value_serializer or table.app.conf.value_serializer
        )
        self.store = cast(StoreT, table.data)
        #: per changelog partition, (key, value or ``DELETED``) in order
        self.pending: dict[int, list[tuple[Any, Any]]] = {}

    def set(self, key: Any, value: Any, partition: int) -> None:
        """Set ``key`` now; ``partition`` is the source partition the key belongs to
        (Faust's rule: a table's changelog partition is its source event's partition)."""
        self.store[key] = value
        self.pending.setdefault(partition, []).append((key, value))

    def delete(self, key: Any, partition: int) -> None:
        """Remove ``key`` now (if there); ``partition`` as for ``set``. The tombstone is
        sent even for a key already gone: a deletion repeated after a crash is harmless."""
        self.store.pop(key, None)
        self.pending.setdefault(partition, []).append((key, DELETED))

    async def commit(self) -> None:
        if not self.pending:
            return
        # Faust's aiokafka driver keeps the AIOKafkaProducer its own send() goes through.
        producer: AIOKafkaProducer = self.table.app.producer._ensure_producer()  # type: ignore[attr-defined]
        dump_key, dump_value = self.key_codec.dumps, self.value_codec.dumps
        sent: list[tuple[asyncio.Future[RecordMetadata], BatchBuilder]] = []
        for partition, records in self.pending.items():
            batch = producer.create_batch()
            for key, value in records:
                raw_key = dump_key(key)
                raw_value = None if value is DELETED else dump_value(value)
                if batch.append(key=raw_key, value=raw_value, timestamp=None) is None:
                    # Full (producer_max_batch_size): send it and start the next, which
                    # takes at least this one record whatever its size.
                    sent.append((await self._send(producer, batch, partition), batch))
                    batch = producer.create_batch()
                    batch.append(key=raw_key, value=raw_value, timestamp=None)
            sent.append((await self._send(producer, batch, partition), batch))
        self.pending.clear()
        last: dict[TP, int] = {}
        for future, batch in sent:
            metadata = await future
            # A batch's records have consecutive offsets from its base offset.
            last[metadata.topic_partition] = metadata.offset + batch.record_count() - 1
        for tp, offset in last.items():
            self.store.set_persisted_offset(tp, offset)

    async def _send(
        self, producer: AIOKafkaProducer, batch: BatchBuilder, partition: int
    ) -> asyncio.Future[RecordMetadata]:
        batch.close()  # else the producer's own send() may add records of others to it
        return await producer.send_batch(batch, self.topic, partition=partition)


def store_reader(table: TableT) -> Callable[[Any], Any]:
    """``get`` of the table's store, as fast as it goes: ``Table.get`` goes through its
    sensors, and the store's own ``Mapping.get`` raises and catches a KeyError for every
    missing key (a new day, a fresh window's empty days); the in-memory store's dict does
    neither. Reads only: writes go through ``TableBatch``."""
    store = cast(StoreT, table.data)
    if isinstance(store, MemoryStore):
        return cast(dict[Any, Any], store.data).get
    return store.get
