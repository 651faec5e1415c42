"""Activity events in; per-student daily totals and closed days out.

An event for a day its partition has already closed is *late*: it is counted, and the
students it touches are rescored for every closed as-of date whose window holds that day
(``DayCloser.rescore``), so their cohorts are banded again. Beyond the lateness horizon a
day is final: such an event is dead-lettered as ``too_late``, never silently dropped.

Exactly-once *effect* on at-least-once Kafka: a (student, local date) record holds its
per-source totals **and** the ids of the events it counted, written as one changelog
record. After a crash either the record (with those ids) was written, so a re-read
event is recognised as a duplicate, or it was not, so the event is counted afresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from faust.types import EventT, Message, TableT

from leap.lateness import days_late, is_too_late
from leap.reference import Student, partition_for
from leap.scoring import Policy, day_end, local_date, to_milli
from leap.settings import Settings
from schemas.codec import AvroCodec, InvalidRecord
from streams.clock import CLOCK_HEADER, close_instant, days_to_close, last_closable_day
from streams.current_event import processing
from streams.day_close import DayCloser
from streams.day_record import DayRecord, day_breakdown, event_fingerprint, totals_key
from streams.dead_letter import DeadLetters, header
from streams.metrics import EVENT_LAG_SECONDS, EVENTS, LAST_CLOSED_DAY
from streams.redis_sink import RedisSink
from streams.sequence import InSequence
from streams.table_batch import TableBatch, store_reader

__all__ = ["ActivityProcessor"]

log = logging.getLogger(__name__)

#: Events dated further ahead than this are refused: one bad clock must not close days.
MAX_FUTURE = timedelta(days=1)


#: Partition clocks hold their closed day as text; a handful of distinct days are parsed.
_parse_day = lru_cache(maxsize=64)(date.fromisoformat)
#: EVENTS' child per (source, outcome), bound once: ``labels`` costs more than ``inc``.
_events = lru_cache(maxsize=64)(EVENTS.labels)


@dataclass
class _Batch:
    """One batch's touched day records, so each is read and written once per batch."""

    #: ``get`` of the ``daily_totals`` store (``store_reader``; writes: ``TableBatch``)
    totals_of: Callable[[str], Any]
    #: ``get`` of the ``partition_clocks`` store: read for every event, so bound once
    clock_of: Callable[[int], Any]
    records: dict[tuple[str, date], DayRecord] = field(default_factory=dict)
    event_for_student: dict[str, EventT] = field(default_factory=dict)
    #: occurred_at (unix seconds) of each event counted, for the event-lag histogram
    occurred: list[float] = field(default_factory=list)
    #: per student, the oldest already-closed day a late event was counted on
    late: dict[str, date] = field(default_factory=dict)

    def last_closed(self, partition: int) -> date | None:
        """The partition's last closed day, as its clock says now (``_set_clock``)."""
        state = self.clock_of(partition)
        return _parse_day(state["closed"]) if state else None

    def clear(self) -> None:
        self.records.clear()
        self.event_for_student.clear()


class ActivityProcessor:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        roster: Mapping[str, Student],
        codec: AvroCodec,
        daily_totals: TableT,
        partition_clocks: TableT,
        dead_letters: DeadLetters,
        day_closer: DayCloser,
        sink: RedisSink,
        sequence: InSequence,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.roster = roster
        self.codec = codec
        self.daily_totals = daily_totals
        self.partition_clocks = partition_clocks
        self.dead_letters = dead_letters
        self.day_closer = day_closer
        self.sink = sink
        self.sequence = sequence
        self.zone = settings.zone
        self.grace = settings.day_close_grace
        self._watermarks: dict[int, int] = {}
        self._next_close_ms: dict[int, int] = {}

    async def process(self, events: Sequence[EventT]) -> None:
        batch = _Batch(store_reader(self.daily_totals), store_reader(self.partition_clocks))
        event_clock = self.settings.clock == "event"
        for event in await self.sequence.admit(events):
            tick = header(event.message, CLOCK_HEADER)
            if tick is not None:
                await self._on_tick(event, tick, batch)
                continue
            record = self._accept(event.message)
            if isinstance(record, InvalidRecord):
                await self.dead_letters.send(event.message, record.reason, str(record))
                continue
            if not self._count(event, record, batch):
                await self.dead_letters.send(
                    event.message,
                    "too_late",
                    f"its day closed more than {self.settings.lateness_horizon_days} "
                    "days ago (LEAP_LATENESS_HORIZON_DAYS); recompute with leap replay",
                )
                continue
            if event_clock:
                occurred_ms = int(record["occurred_at"].timestamp() * 1000)
                await self._advance(event, occurred_ms, batch)
        await self._flush(batch)
        await self.sequence.commit()  # after the batch's effects are durable
        now = time.time()
        observe = EVENT_LAG_SECONDS.observe
        for occurred in batch.occurred:
            observe(max(0.0, now - occurred))

    def _accept(self, message: Message) -> dict[str, Any] | InvalidRecord:
        """The decoded event, or why it is to be dead-lettered."""
        value = message.value or b""
        try:
            record = self.codec.decode(value)
            sid = record["student_id"]
            if message.key != sid.encode():
                raise InvalidRecord("wrong_key", "record key must be the student_id")
            if partition_for(sid, self.settings.partitions) != message.partition:
                raise InvalidRecord(
                    "wrong_partition", "produce with Kafka's default (murmur2) partitioner"
                )
            if record["occurred_at"].timestamp() > time.time() + MAX_FUTURE.total_seconds():
                raise InvalidRecord("from_future", f"occurred_at {record['occurred_at']}")
        except InvalidRecord as exc:
            return exc
        return record

    def _count(self, event: EventT, record: Mapping[str, Any], batch: _Batch) -> bool:
        """Count the event once; False if its day is past the lateness horizon."""
        sid, source = record["student_id"], record["source"]
        day = local_date(record["occurred_at"], self.zone)
        day_record = batch.records.get((sid, day))
        if day_record is None:
            day_record = DayRecord.from_table(batch.totals_of(totals_key(sid, day)))
        fingerprint = event_fingerprint(record["event_id"])
        if fingerprint in day_record.counted:
            # A duplicate first: a re-delivered event counted before its day became final
            # is a duplicate, not a new too-late event.
            _events(source, "duplicate").inc()
            return True
        closed = batch.last_closed(event.message.partition)
        if is_too_late(day, closed, self.settings.lateness_horizon_days):
            _events(source, "too_late").inc()
            return False
        late = days_late(day, closed) is not None
        batch.records[(sid, day)] = day_record
        day_record.counted.add(fingerprint)
        day_record.sources[source] = day_record.sources.get(source, 0) + to_milli(
            record["quantity"]
        )
        batch.event_for_student[sid] = event
        batch.occurred.append(record["occurred_at"].timestamp())
        if late:
            batch.late[sid] = min(day, batch.late.get(sid, day))
        _events(source, "late" if late else "counted").inc()
        return True

    async def _on_tick(self, event: EventT, tick: bytes, batch: _Batch) -> None:
        try:
            watermark = int(tick)
        except ValueError:
            await self.dead_letters.send(event.message, "bad_clock_tick", repr(tick[:40]))
            return
        if self.settings.clock == "wall":
            watermark = min(watermark, int(time.time() * 1000))
        await self._advance(event, watermark, batch)

    def _history_starts(self, partition: int, closed: date) -> date:
        """The first day this partition has counted events for (alerts look no further)."""
        state = self.partition_clocks.get(partition) or {}
        since = state.get("since")
        return date.fromisoformat(since) if since else closed + timedelta(days=1)

    async def _advance(self, event: EventT, watermark: int, batch: _Batch) -> None:
        """Move a partition's clock on; close every day it has passed (end + grace)."""
        partition = event.message.partition
        watermark = max(watermark, self._watermarks.get(partition, 0))
        self._watermarks[partition] = watermark
        if watermark < self._next_close_ms.get(partition, 0):
            return
        closed = batch.last_closed(partition)
        if closed is not None:
            self._report_closed(partition, closed)
        if closed is None:
            # First sight of this partition. On the wall clock the newest closable day is
            # closed at once (a fresh deployment fed a backfill shows indicators today); on
            # the event clock counting starts with the day of the partition's first record.
            newest = last_closable_day(watermark, self.zone, self.grace)
            if self.settings.clock == "event":
                self._set_clock(event, newest, watermark, newest + timedelta(days=1))
                return
            closed = newest - timedelta(days=1)
        days = days_to_close(closed, watermark, self.zone, self.grace)
        if days:
            await self._flush(batch)
        since = self._history_starts(partition, closed)
        for day in days:
            await self.day_closer.close(event, day, since)
            self._set_clock(event, day, watermark, since)
        if not days:
            self._remember_next_close(partition, closed)

    def _set_clock(self, event: EventT, closed: date, watermark: int, since: date) -> None:
        partition = event.message.partition
        with processing(event):
            self.partition_clocks[partition] = {
                "closed": closed.isoformat(),
                "watermark": watermark,
                "since": since.isoformat(),
            }
        self._remember_next_close(event.message.partition, closed)
        self._report_closed(event.message.partition, closed)

    def _report_closed(self, partition: int, closed: date) -> None:
        LAST_CLOSED_DAY.labels(str(partition)).set(day_end(closed, self.zone).timestamp())

    def _remember_next_close(self, partition: int, closed: date) -> None:
        next_close = close_instant(closed + timedelta(days=1), self.zone, self.grace)
        self._next_close_ms[partition] = int(next_close.timestamp() * 1000)

    async def _flush(self, batch: _Batch) -> None:
        """Write each touched day record once, and its breakdown to Redis for the API."""
        breakdowns: dict[tuple[str, date], dict[str, Any]] = {}
        late_by_partition: dict[int, dict[str, date]] = {}
        for sid, day in batch.late.items():
            partition = batch.event_for_student[sid].message.partition
            late_by_partition.setdefault(partition, {})[sid] = day
        batch.late.clear()
        writes = TableBatch(self.daily_totals)
        for (sid, day), day_record in batch.records.items():
            event = batch.event_for_student.get(sid)
            if event is None:
                continue  # only duplicates touched it: nothing changed
            writes.set(totals_key(sid, day), day_record.to_table(), event.message.partition)
            if sid in self.roster:  # the API shows students in scope only
                breakdowns[(sid, day)] = day_breakdown(day_record.sources, self.policy)
        batch.clear()
        # Rescored (from the records just set) and acknowledged *before* the records are
        # committed: after a crash in between, the events are not yet duplicates, so they
        # are counted as late again and rescored again, instead of never.
        for partition, late in late_by_partition.items():
            closed = batch.last_closed(partition)
            if closed is not None:  # always: late means closed, and clocks never go back
                since = self._history_starts(partition, closed)
                await self.day_closer.rescore(partition, late, closed, since)
        await writes.commit()
        await self.sink.write_days(breakdowns)
