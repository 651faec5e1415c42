"""Every record of a partition processed once, in order, whatever the consumer does.

faust-streaming can deliver records fetched before it seeks a newly assigned partition to
its committed offset, then drop the re-fetched ones and count the jump as a "gap" that its
next commit skips over (faust-streaming #216, #606; caught here by
``tests/faults/test_kill_worker.py``): records never processed, yet committed. So each
agent keeps its own durable position per partition, in a table written only after the
effects of the records before it are durable, and checks every record against it:

- an offset below it was processed already (a re-delivery): skipped;
- an offset above it means records were skipped: the consumer is sent back to the position
  (``Consumer.seek``) and nothing past the hole is processed until it is filled.

A seek does not always hold. A rebalance can seek the consumer forward again (to Faust's
committed offset, which may lie past the hole); and records Faust fetched before the seek
are still handed over after it, moving its read offset past the hole again, so it drops
the re-fetched records as already read. On a quiet partition nothing more arrives to show
the hole is still open, so a watcher sends the consumer back once a second until the
hole's first record is admitted, or the partition is no longer this worker's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.types import EventT, TableT

from streams.metrics import OFFSET_REWINDS
from streams.table_batch import TableBatch

__all__ = ["InSequence"]

log = logging.getLogger(__name__)

#: While a hole stays open, the consumer is sent back to it this often.
REWIND_EVERY_SECONDS = 1.0


class InSequence:
    """One agent's durable next-offset per source partition (keyed by partition number)."""

    def __init__(self, positions: TableT, name: str) -> None:
        self.positions = positions
        self.name = name
        self._pending: dict[int, int] = {}
        self._holes: dict[int, int] = {}  # partition -> the offset it waits for
        self._watchers: dict[int, asyncio.Task[None]] = {}

    async def admit(self, events: Iterable[EventT]) -> list[EventT]:
        """The events to process now, in order; re-deliveries dropped, holes rewound."""
        expected: dict[int, int | None] = {}
        held: set[int] = set()
        admitted = []
        for event in events:
            message = event.message
            partition, offset = message.partition, message.offset
            if partition in held:
                continue
            if partition not in expected:
                expected[partition] = self._pending.get(partition, self._stored(partition))
            want = expected[partition]
            if want is not None and offset < want:
                continue  # processed before, and its effects are durable
            if want is not None and offset > want:
                held.add(partition)
                await self._rewind(message.tp, want, offset)
                continue
            admitted.append(event)
            expected[partition] = offset + 1
            self._holes.pop(partition, None)
        self._pending.update({p: o for p, o in expected.items() if o is not None})
        return admitted

    async def commit(self) -> None:
        """Make the positions of the admitted events durable: call it only once their
        effects are (a crash before this re-processes them; the day records dedupe)."""
        if not self._pending:
            return
        # Table writes made through Faust's own path (rounds, clocks) wait in its producer
        # buffer: they must be durable before a position says their records are done.
        await self.positions.app.producer.flush()
        writes = TableBatch(self.positions)
        for partition, offset in self._pending.items():
            writes.set(partition, offset, partition)
        self._pending.clear()
        await writes.commit()

    def _stored(self, partition: int) -> int | None:
        value = self.positions.get(partition)
        return int(value) if value is not None else None

    async def _rewind(self, tp: Any, want: int, got: int) -> None:
        if self._holes.get(tp.partition) == want:
            return  # sent back there already; the watcher repeats it while the hole is open
        self._holes[tp.partition] = want
        log.warning(
            "%s: the consumer skipped %s[%d] offsets %d..%d; reading them again",
            self.name,
            tp.topic,
            tp.partition,
            want,
            got - 1,
        )
        await self._seek(tp, want)
        watcher = self._watchers.get(tp.partition)
        if watcher is None or watcher.done():
            self._watchers[tp.partition] = asyncio.create_task(self._watch(tp))

    async def _watch(self, tp: Any) -> None:
        """Send the consumer back to ``tp``'s hole once a second while it stays open."""
        consumer = self.positions.app.consumer
        while True:
            await asyncio.sleep(REWIND_EVERY_SECONDS)
            want = self._holes.get(tp.partition)
            if want is None:
                return  # filled
            if tp not in consumer.assignment():
                self._holes.pop(tp.partition, None)  # its new owner checks its own position
                return
            log.info(
                "%s: %s[%d] still waits for offset %d", self.name, tp.topic, tp.partition, want
            )
            try:
                await self._seek(tp, want)
            except IllegalStateError:  # revoked since the check above
                self._holes.pop(tp.partition, None)
                return

    async def _seek(self, tp: Any, offset: int) -> None:
        OFFSET_REWINDS.labels(self.name).inc()
        await self.positions.app.consumer.seek(tp, offset)
