"""Every record of a partition processed once, in order, whatever the consumer does.

faust-streaming can deliver records fetched before it seeks a newly assigned partition to
its committed offset, then drop the re-fetched ones and count the jump as a "gap" that its
next commit skips over (faust-streaming #216, #606; caught here by
``tests/faults/test_kill_worker.py``): records never processed, yet committed. So each
agent keeps its own durable position per partition, in a table written only after the
effects of the records before it are durable, and checks every record against it:

- an offset below it was processed already (a re-delivery): skipped;
- an offset above it means records were skipped: the consumer is sent back to the position
  (``Consumer.seek``) and nothing past the hole is processed until it is filled. A rebalance
  can seek the consumer forward again (to Faust's committed offset, which may lie past the
  hole), so while the hole stays open the consumer is sent back again, once a second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from faust.types import EventT, TableT

from streams.metrics import OFFSET_REWINDS
from streams.table_batch import TableBatch

__all__ = ["InSequence"]

log = logging.getLogger(__name__)

#: While a hole stays open, the consumer is sent back to it at most this often.
REWIND_EVERY_SECONDS = 1.0


class InSequence:
    """One agent's durable next-offset per source partition (keyed by partition number)."""

    def __init__(self, positions: TableT, name: str) -> None:
        self.positions = positions
        self.name = name
        self._pending: dict[int, int] = {}
        self._rewound: dict[int, tuple[int, float]] = {}  # partition -> (offset, when)

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
            self._rewound.pop(partition, None)
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
        now = time.monotonic()
        offset, when = self._rewound.get(tp.partition, (None, 0.0))
        if offset == want and now - when < REWIND_EVERY_SECONDS:
            return  # just sent back there; the records before the hole should come next
        self._rewound[tp.partition] = (want, now)
        OFFSET_REWINDS.labels(self.name).inc()
        log.warning(
            "%s: the consumer skipped %s[%d] offsets %d..%d; reading them again",
            self.name,
            tp.topic,
            tp.partition,
            want,
            got - 1,
        )
        await self.positions.app.consumer.seek(tp, want)
