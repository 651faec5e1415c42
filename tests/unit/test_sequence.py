"""``streams.sequence.InSequence``: records admitted once, in order; holes sent back for.

The positions table and the consumer are stand-ins here (plain objects recording calls):
what is tested is the admission rule. The real thing runs in every worker test, and
tests/faults/test_kill_worker.py is what found the consumer skipping records.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from streams import sequence
from streams.sequence import InSequence


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class Message:
    partition: int
    offset: int

    @property
    def tp(self) -> TP:
        return TP("leap.activity", self.partition)


@dataclass
class Event:
    message: Message


@dataclass
class Consumer:
    seeks: list[tuple[TP, int]] = field(default_factory=list)
    assigned: set[TP] = field(default_factory=lambda: {TP("leap.activity", p) for p in range(4)})

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))

    def assignment(self) -> set[TP]:
        return self.assigned


@dataclass
class App:
    consumer: Consumer = field(default_factory=Consumer)


class Positions(dict[int, int]):
    def __init__(self, stored: dict[int, int]) -> None:
        super().__init__(stored)
        self.app = App()


def events(*spec: tuple[int, int]) -> list[Any]:
    return [Event(Message(p, o)) for p, o in spec]


def offsets(admitted: list[Any]) -> list[tuple[int, int]]:
    return [(e.message.partition, e.message.offset) for e in admitted]


async def test_first_sight_admits_everything_in_order() -> None:
    seq = InSequence(Positions({}), "t")  # type: ignore[arg-type]
    got = await seq.admit(events((0, 5), (1, 9), (0, 6)))
    assert offsets(got) == [(0, 5), (1, 9), (0, 6)]
    assert seq._pending == {0: 7, 1: 10}


async def test_redeliveries_below_the_stored_position_are_dropped() -> None:
    seq = InSequence(Positions({0: 10}), "t")  # type: ignore[arg-type]
    got = await seq.admit(events((0, 8), (0, 9), (0, 10), (0, 11)))
    assert offsets(got) == [(0, 10), (0, 11)]


async def test_a_hole_sends_the_consumer_back_and_holds_the_partition() -> None:
    positions = Positions({0: 10, 1: 3})
    seq = InSequence(positions, "t")  # type: ignore[arg-type]
    got = await seq.admit(events((0, 12), (1, 3), (0, 13), (1, 4)))
    assert offsets(got) == [(1, 3), (1, 4)]  # partition 0 waits for 10 and 11
    assert positions.app.consumer.seeks == [(TP("leap.activity", 0), 10)]
    # still-queued records past the hole do not send it back again at once
    got = await seq.admit(events((0, 14)))
    assert got == [] and len(positions.app.consumer.seeks) == 1
    # once the hole's records arrive, the partition moves on
    got = await seq.admit(events((0, 10), (0, 11), (0, 12)))
    assert offsets(got) == [(0, 10), (0, 11), (0, 12)]


async def test_an_open_hole_is_sought_again_though_nothing_more_arrives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A seek can be undone (records fetched before it move Faust's read offset past the
    hole again); on a quiet partition no later record would show it, so a watcher repeats
    the seek until the hole's first record is admitted: the kill -9 test stalled without."""
    monkeypatch.setattr(sequence, "REWIND_EVERY_SECONDS", 0.01)
    positions = Positions({0: 10})
    seq = InSequence(positions, "t")  # type: ignore[arg-type]
    seeks = positions.app.consumer.seeks
    assert await seq.admit(events((0, 12))) == []
    await asyncio.sleep(0.1)
    assert len(seeks) >= 3 and set(seeks) == {(TP("leap.activity", 0), 10)}
    assert offsets(await seq.admit(events((0, 10)))) == [(0, 10)]
    await asyncio.sleep(0.03)
    filled = len(seeks)
    await asyncio.sleep(0.1)
    assert len(seeks) == filled  # the hole is filled: no more seeks


async def test_a_hole_on_a_partition_no_longer_assigned_is_left_to_its_new_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sequence, "REWIND_EVERY_SECONDS", 0.01)
    positions = Positions({1: 3})
    seq = InSequence(positions, "t")  # type: ignore[arg-type]
    assert await seq.admit(events((1, 7))) == []
    positions.app.consumer.assigned.discard(TP("leap.activity", 1))
    await asyncio.sleep(0.1)
    assert positions.app.consumer.seeks == [(TP("leap.activity", 1), 3)]
    assert seq._holes == {}


async def test_positions_carry_over_between_batches_before_a_commit() -> None:
    seq = InSequence(Positions({0: 1}), "t")  # type: ignore[arg-type]
    await seq.admit(events((0, 1), (0, 2)))
    got = await seq.admit(events((0, 2), (0, 3)))
    assert offsets(got) == [(0, 3)]
