"""The Redis sink's pending set keeps its size as writes come (``len`` is read after every
queueing): whatever the writes, failed flushes put back and newer writes on top, it equals
the size counted afresh from the hashes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.redis_sink import PendingWrites
from tests.unit.test_redis_pending import WRITE, queue

# A flush taking everything, then failing (its writes restored) or not, with writes queued
# while it is in flight.
FLUSH = st.tuples(st.just("flush"), st.booleans(), st.lists(WRITE, max_size=3))


def counted(pending: PendingWrites) -> int:
    return sum(write.size for write in pending.hashes.values())


@settings(max_examples=300)
@given(st.lists(st.one_of(WRITE, FLUSH), max_size=25))
def test_the_running_size_is_the_size_of_what_is_pending(steps: list[tuple[Any, ...]]) -> None:
    pending = PendingWrites()
    for step in steps:
        if step[0] == "flush":
            _, fails, meanwhile = step
            taken = pending.take()
            assert len(pending) == 0
            for write in meanwhile:
                queue(pending, write)
            if fails:
                pending.restore(taken)
        else:
            queue(pending, step)
        assert len(pending) == counted(pending)
