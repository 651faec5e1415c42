"""Rebuilding this worker's share of Redis from its Faust tables.

Redis is a cache of the tables for the API, and it can lose writes: a worker killed
during an outage dies with its queued writes, and a Redis restarted without persistence
comes back empty. The tables survive both (changelog-backed), so after every rebalance
(once recovery is done) and whenever the sink suspects a loss, each worker rewrites the
hashes of its *active* partitions. Standby copies are skipped: they may lag their
active, whose owner rewrites them itself.

What is rewritten matches what the agents write: every student's day breakdowns still
inside the longest window of the partition's newest closed day (older days were
deliberately dropped from Redis and must not come back), and each indicator state.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

import faust
from faust.types import TableT

from leap.reference import partition_for
from leap.roster import Roster
from leap.scoring import Policy
from leap.state_keys import days_key, indicator_key
from streams.day_record import day_breakdown, day_sources
from streams.indicator_record import indicator_state
from streams.redis_sink import RedisSink

__all__ = ["RedisResync", "day_hashes", "indicator_hashes", "indicator_partition"]

log = logging.getLogger(__name__)


def indicator_partition(state: Mapping[str, str], partitions: int) -> int:
    """The ``indicators`` table partition of a state: that of the cohort-scores record it
    was banded from, which is keyed by cohort (course|year) with Kafka's default
    partitioner. Taken from the state, not today's reference data, which may differ."""
    return partition_for(f"{state['course']}|{state['year']}", partitions)


def day_hashes(
    totals: Iterable[tuple[str, Mapping[str, Any]]],
    students: Mapping[str, int],
    closed: Mapping[int, date | None],
    window_days: int,
    policy: Policy,
    prefix: str,
) -> dict[str, dict[str, str]]:
    """Each student's days hash, from ``daily_totals`` items ("sid|YYYY-MM-DD" → record).

    ``students`` maps every student in scope on the active partitions to its partition,
    ``closed`` each active partition to its newest closed day (None: none closed yet), and
    ``window_days`` is the longest window, beyond which a closing day drops a date from
    Redis. Every such student gets a hash, empty if nothing is left to show."""
    first_kept = {
        partition: day - timedelta(days=window_days - 1) if day else date.min
        for partition, day in closed.items()
    }
    hashes: dict[str, dict[str, str]] = {days_key(prefix, sid): {} for sid in students}
    for key, record in totals:
        sid, _, day = key.rpartition("|")
        partition = students.get(sid)
        if partition is None or day < first_kept[partition].isoformat():
            continue
        hashes[days_key(prefix, sid)][day] = json.dumps(day_breakdown(day_sources(record), policy))
    return hashes


def indicator_hashes(
    indicators: Iterable[tuple[str, str | Mapping[str, Any]]],
    active: set[int],
    partitions: int,
    prefix: str,
) -> dict[str, dict[str, str]]:
    """Each indicator state held in ``indicators`` table items on an active partition."""
    hashes: dict[str, dict[str, str]] = {}
    for sid, value in indicators:
        state = indicator_state(sid, value)
        if state and indicator_partition(state, partitions) in active:
            hashes[indicator_key(prefix, sid)] = state
    return hashes


class RedisResync:
    """Queues, on the sink, the Redis state of this worker's active partitions."""

    def __init__(
        self,
        app: faust.App,
        policy: Policy,
        roster: Roster,
        daily_totals: TableT,
        partition_clocks: TableT,
        indicators: TableT,
        sink: RedisSink,
        prefix: str,
        partitions: int,
    ) -> None:
        self.app = app
        self.policy = policy
        self.daily_totals = daily_totals
        self.partition_clocks = partition_clocks
        self.indicators = indicators
        self.sink = sink
        self.prefix = prefix
        self.partitions = partitions
        self.roster = roster

    def run(self) -> None:
        """Synchronous from the first table read to the last queued write, so no agent can
        change a table in between; later agent writes then land after these."""
        started = time.perf_counter()
        days_active = self._active(self.daily_totals)
        # The roster as it is now: students out of scope are shown nowhere.
        students = {s.student_id: p for p in days_active for s in self.roster.on_partition(p)}
        closed = {p: self._closed(p) for p in days_active}
        window = self.roster.institution.longest_window_days(self.policy)
        hashes = day_hashes(
            self.daily_totals.items(), students, closed, window, self.policy, self.prefix
        )
        in_scope = ((sid, v) for sid, v in self.indicators.items() if sid in self.roster)
        active = self._active(self.indicators)
        hashes.update(indicator_hashes(in_scope, active, self.partitions, self.prefix))
        self.sink.replace_all(hashes)
        log.info(
            "resyncing Redis: %d hashes of partitions %s, read in %.3f s",
            len(hashes),
            sorted(days_active),
            time.perf_counter() - started,
        )

    def on_redis_lost(self) -> None:
        """Redis came back from an outage, or without the sink's marker."""
        if self.app.rebalancing:
            return  # the rebalance's own resync, once recovery is done, covers it
        self.run()

    def _active(self, table: TableT) -> set[int]:
        topic = table.changelog_topic.get_topic_name()
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic}

    def _closed(self, partition: int) -> date | None:
        state = self.partition_clocks.get(partition)
        return date.fromisoformat(state["closed"]) if state else None
