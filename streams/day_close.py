"""Stage 1 of a day boundary: score the students on one partition, report per cohort.

A cohort (course + year) spans partitions, so no one worker can band it alone. Each
partition reports its students' scores for every cohort (empty reports too), keyed by
cohort, and ``streams.cohort_banding`` bands a cohort once every partition reported.
Late events send a *late* report of just the students they touched, for each closed
as-of date whose window holds the late day; banding merges it and bands again.

A close slides each student's window on by one day (``streams.student_windows``) rather
than reading and weighing every window day again: the same floats, for two day records
read per student instead of one per window day, twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta
from functools import partial
from typing import Any, cast

from aiokafka.structs import RecordMetadata
from faust.types import EventT, StoreT, TableT, TopicT

from leap.lateness import amended_as_of_dates
from leap.reference import partition_for
from leap.roster import Roster
from leap.scoring import Policy, Totals
from leap.settings import Settings
from streams.alerting import NoEngagementAlerts
from streams.batch_produce import send_by_key
from streams.day_record import day_sources, totals_key
from streams.metrics import DAY_CLOSE_SECONDS, DAYS_CLOSED, STUDENTS_SCORED
from streams.redis_sink import RedisSink
from streams.student_windows import StudentWindows, WindowSummary, read_summary
from streams.table_batch import TableBatch, store_reader

__all__ = ["DayCloser"]

log = logging.getLogger(__name__)


class DayCloser:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        roster: Roster,
        daily_totals: TableT,
        cohort_scores: TopicT,
        sink: RedisSink,
        alerts: NoEngagementAlerts,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.roster = roster
        self.daily_totals = daily_totals
        self.cohort_scores = cohort_scores
        self.sink = sink
        self.alerts = alerts
        # Day records are kept while a late event could still change a window.
        institution = roster.institution
        self.keep_days = (
            max(institution.longest_window_days(policy), institution.no_engagement_days)
            + settings.lateness_horizon_days
        )
        self.store = cast(StoreT, daily_totals.data)  # reads skip Table's per-key overhead
        self.windows = StudentWindows(policy)
        # Day records too old to keep, by partition, found by one pass over the table per
        # cutoff date (a pass per partition's close read every key once per partition).
        self._stale: tuple[str, dict[int, list[str]]] = ("", {})
        self._cohorts_of: tuple[date, list[str]] = (date.min, [])
        # A rebalance may hand this worker's partitions to another, which may amend their
        # days before they come back: what was kept about them is stale from then on.
        daily_totals.app.on_partitions_revoked.connect(self._on_partitions_revoked)

    async def _on_partitions_revoked(self, sender: Any, /, *args: Any, **kwargs: Any) -> None:
        self.windows.clear()
        self._stale = ("", {})

    async def close(self, event: EventT, day: date, history_starts: date) -> None:
        """Close ``day`` for the partition ``event`` came from, whose first day with
        counted events is ``history_starts``."""
        partition = event.message.partition
        started = time.perf_counter()
        students = self.roster.on_partition(partition)
        windows = self.windows.close(
            partition,
            day,
            [(s.student_id, self.roster.window_days(s)) for s in students],
            self._totals_of,
        )
        reports: dict[str, dict[str, list[Any]]] = {c: {} for c in self._cohorts(day)}
        for student in students:
            in_cohort = reports.setdefault(student.cohort, {})
            in_cohort[student.student_id] = _entry(windows[student.student_id])
        as_of = day.isoformat()
        sent = await self._send_reports(
            (
                cohort,
                {
                    "cohort": cohort,
                    "as_of": as_of,
                    "partition": partition,
                    "partitions": self.settings.partitions,
                    "scores": scores,
                },
            )
            for cohort, scores in reports.items()
        )
        # Acknowledged before the caller moves the partition's clock past the day: a crash
        # in between closes the day again on redelivery; a lost report would leave its
        # cohort's round incomplete for ever.
        for ack in sent:
            await ack
        await self.alerts.review(
            partition, students, day, history_starts, partial(self.windows.engagement_on, partition)
        )
        # Acknowledged before the caller commits the close (its clock, then positions).
        purge = TableBatch(self.daily_totals)
        self._forget_day_records(partition, day - timedelta(days=self.keep_days), purge)
        await purge.commit()
        await self.sink.forget_days(
            [s.student_id for s in students],
            day - timedelta(days=self.roster.institution.longest_window_days(self.policy)),
        )
        elapsed = time.perf_counter() - started
        DAYS_CLOSED.inc()
        STUDENTS_SCORED.inc(len(students))
        DAY_CLOSE_SECONDS.observe(elapsed)
        log.info(
            "closed %s on partition %d: %d students in %.3fs",
            day,
            partition,
            len(students),
            elapsed,
        )

    async def rescore(
        self, partition: int, late: Mapping[str, date], closed: date, history_starts: date
    ) -> None:
        """Send new scores of students whose closed days changed (``late`` maps each to the
        oldest such day) for every as-of date up to ``closed`` whose window holds it."""
        self.windows.forget(partition, late)  # their kept days are out of date
        reports: dict[tuple[str, date], dict[str, list[Any]]] = {}
        for sid, first in late.items():
            student = self.roster.get(sid)
            if student is None:
                continue  # not in scope (or not in the reference data): kept, not scored
            window = self.roster.window_days(student)
            totals_on = self._totals_of(sid)
            for as_of in amended_as_of_dates(first, closed, window):
                summary = read_summary(totals_on, as_of, window, self.policy)
                reports.setdefault((student.cohort, as_of), {})[sid] = _entry(summary)
        sent = await self._send_reports(
            (
                cohort,
                {
                    "cohort": cohort,
                    "as_of": as_of.isoformat(),
                    "partition": partition,
                    "partitions": self.settings.partitions,
                    "scores": scores,
                    "late": True,
                },
            )
            for (cohort, as_of), scores in sorted(reports.items())
        )
        for ack in sent:
            await ack
        rescored = [s for sid in late if (s := self.roster.get(sid)) is not None]
        await self.alerts.review(
            partition,
            rescored,
            closed,
            history_starts,
            partial(self.windows.engagement_on, partition),
        )
        log.info(
            "late events on partition %d: %d students rescored for %d cohort-days",
            partition,
            len(late),
            len(reports),
        )

    async def _send_reports(
        self, reports: Iterable[tuple[str, dict[str, Any]]]
    ) -> list[asyncio.Future[RecordMetadata]]:
        """Queue ``(cohort, report)`` records keyed by cohort, encoded as ``Topic.send``
        encodes them, as one record batch per partition (``Topic.send`` cost a produce
        request every two or three reports); returns the futures to await."""
        topic = self.cohort_scores
        return await send_by_key(
            topic.app,
            topic.get_topic_name(),
            [(cohort, topic.prepare_value(report, None)[0]) for cohort, report in reports],
        )

    def _cohorts(self, day: date) -> list[str]:
        """Every cohort in scope, as of the first of this worker's partitions to close
        ``day`` (the roster takes a pass over every student to tell): each partition reports
        the same cohorts for a day, even if reference data changes in between."""
        if self._cohorts_of[0] != day:
            self._cohorts_of = day, self.roster.cohorts()
        return self._cohorts_of[1]

    def _totals_of(self, student_id: str) -> Callable[[date], Totals | None]:
        get = store_reader(self.daily_totals)

        def totals_on(day: date) -> Totals | None:
            value = get(totals_key(student_id, day))
            return day_sources(value) if value else None

        return totals_on

    def _forget_day_records(self, partition: int, before: date, purge: TableBatch) -> None:
        """Storage limitation: drop this partition's day records older than any use (a
        day of records at a close: one batch of tombstones, not a send per key)."""
        cutoff, stale = self._stale
        if cutoff != before.isoformat():
            cutoff, stale = before.isoformat(), {}
            for key in list(self.store.keys()):
                sid, _, day = key.rpartition("|")
                # the cheap date test first: hashing every key for its partition is not
                if day < cutoff:
                    stale.setdefault(partition_for(sid, self.settings.partitions), []).append(key)
            self._stale = cutoff, stale
        for key in stale.pop(partition, []):
            purge.delete(key, partition)


def _entry(summary: WindowSummary) -> list[Any]:
    """A student's line in a report: [score, window days, active days, units of each of
    ``leap.scoring.SOURCES`` in thousandths] (numbers only: small to send and to keep)."""
    return [summary.score, summary.window_days, summary.active_days, *summary.units]
