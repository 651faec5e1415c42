"""The Redis sink's pending set: coalesced, and a later write is never undone by an earlier one.

A model Redis (dict of hashes) receives flushes that may fail after any number of hashes,
with new writes queued while a flush is in flight; once everything is finally flushed it
must equal applying every write in order straight to Redis.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.redis_sink import HashWrite, PendingWrites

Model = dict[str, dict[str, str]]

# Few keys and fields, so that writes often collide (where ordering can go wrong).
KEYS = st.sampled_from(["k1", "k2"])
FIELDS = st.sampled_from(["a", "b"])
VALUES = st.text("xyz", min_size=1, max_size=2)
WRITE = st.one_of(
    st.tuples(st.just("set"), KEYS, st.dictionaries(FIELDS, VALUES, min_size=1)),
    st.tuples(st.just("delete"), KEYS, st.lists(FIELDS, min_size=1)),
    st.tuples(st.just("replace"), KEYS, st.dictionaries(FIELDS, VALUES)),
)
# A flush: how many hashes succeed before it fails (None: it all succeeds), and the
# writes queued while it is in flight.
FLUSH = st.tuples(st.just("flush"), st.none() | st.integers(0, 3), st.lists(WRITE, max_size=3))
STEPS = st.lists(st.one_of(WRITE, FLUSH), max_size=25)


def queue(pending: PendingWrites, write: tuple[Any, ...]) -> None:
    kind, key, arg = write
    getattr(pending, kind)(key, arg)


def apply(model: Model, key: str, write: HashWrite) -> None:
    """What RedisSink._send does to one hash."""
    current = {} if write.replace else model.get(key, {})
    for field, value in write.fields.items():
        if value is None:
            current.pop(field, None)
        else:
            current[field] = value
    model[key] = current


def direct(model: Model, write: tuple[Any, ...]) -> None:
    pending = PendingWrites()
    queue(pending, write)
    for key, hash_write in pending.take().items():
        apply(model, key, hash_write)


def nonempty(model: Model) -> Model:
    return {k: v for k, v in model.items() if v}


@settings(max_examples=300)
@given(STEPS)
@example([("set", "k1", {"a": "old"}), ("flush", 0, [("set", "k1", {"a": "new"})])])
@example([("set", "k1", {"a": "old"}), ("flush", 0, [("replace", "k1", {"b": "new"})])])
@example([("replace", "k1", {"a": "old"}), ("flush", 0, [("delete", "k1", ["a"])])])
@example(
    [
        ("set", "k1", {"b": "gone"}),
        ("flush", None, []),
        ("replace", "k1", {"a": "old"}),
        ("flush", 0, [("set", "k1", {"a": "new"})]),
    ]
)
def test_flushes_that_fail_midway_never_undo_a_later_write(steps: list[tuple[Any, ...]]) -> None:
    pending, redis, truth = PendingWrites(), {}, {}
    for step in steps:
        if step[0] != "flush":
            queue(pending, step)
            direct(truth, step)
            continue
        _, fails_after, during = step
        batch = list(pending.take().items())
        for write in during:  # queued while the flush awaits Redis
            queue(pending, write)
            direct(truth, write)
        done = len(batch) if fails_after is None else min(fails_after, len(batch))
        for key, hash_write in batch[:done]:
            apply(redis, key, hash_write)
        pending.restore(dict(batch[done:]))
    for key, hash_write in pending.take().items():
        apply(redis, key, hash_write)
    assert nonempty(redis) == nonempty(truth)


def test_writes_coalesce_per_field() -> None:
    pending = PendingWrites()
    for n in range(1000):
        pending.set("days:S1", {"2026-11-30": str(n)})
    pending.delete("days:S1", ["2026-11-01"])
    pending.set("indicator:S1", {"indicator": "low", "score": "1.0"})
    pending.set("indicator:S1", {"indicator": "high"})
    assert len(pending) == 4
    taken = pending.take()
    assert taken["days:S1"] == HashWrite({"2026-11-30": "999", "2026-11-01": None})
    assert taken["indicator:S1"].fields == {"indicator": "high", "score": "1.0"}
    assert len(pending) == 0


def test_a_failed_replace_goes_back_under_newer_field_writes() -> None:
    pending = PendingWrites()
    pending.replace("days:S1", {"a": "old", "b": "old"})
    failed = pending.take()
    pending.set("days:S1", {"a": "new"})
    pending.restore(failed)
    assert pending.take() == {"days:S1": HashWrite({"a": "new", "b": "old"}, replace=True)}


def test_a_failed_write_is_dropped_under_a_newer_replace() -> None:
    pending = PendingWrites()
    pending.set("days:S1", {"a": "old"})
    failed = pending.take()
    pending.replace("days:S1", {"b": "new"})
    pending.restore(failed)
    assert pending.take() == {"days:S1": HashWrite({"b": "new"}, replace=True)}


def test_deleting_a_whole_hash_counts_as_one_write() -> None:
    pending = PendingWrites()
    pending.replace("days:S1", {})
    assert len(pending) == 1
