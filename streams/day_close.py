"""Stage 1 of a day boundary: score the students on one partition, report per cohort.

A cohort (course + year) spans partitions, so no one worker can band it alone. Each
partition reports its students' scores for every cohort (empty reports too), keyed by
cohort, and ``streams.cohort_banding`` bands a cohort once every partition reported.
Late events send a *late* report of just the students they touched, for each closed
as-of date whose window holds the late day; banding merges it and bands again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from faust.types import EventT, TableT, TopicT

from leap.lateness import amended_as_of_dates
from leap.reference import Student, partition_for
from leap.roster import Roster
from leap.scoring import Policy, student_score, window_breakdown
from leap.settings import Settings
from streams.alerting import NoEngagementAlerts
from streams.current_event import processing
from streams.day_record import day_sources, totals_key
from streams.metrics import DAY_CLOSE_SECONDS, DAYS_CLOSED, STUDENTS_SCORED
from streams.redis_sink import RedisSink

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

    async def close(self, event: EventT, day: date, history_starts: date) -> None:
        """Close ``day`` for the partition ``event`` came from, whose first day with
        counted events is ``history_starts``."""
        partition = event.message.partition
        started = time.perf_counter()
        students = self.roster.on_partition(partition)
        reports: dict[str, dict[str, list[Any]]] = {c: {} for c in self.roster.cohorts()}
        for student in students:
            reports[student.cohort][student.student_id] = self._entry(student, day)
        sent = []
        for cohort, scores in reports.items():
            sent.append(
                await self.cohort_scores.send(
                    key=cohort.encode(),
                    value={
                        "cohort": cohort,
                        "as_of": day.isoformat(),
                        "partition": partition,
                        "partitions": self.settings.partitions,
                        "scores": scores,
                    },
                )
            )
        # Acknowledged before the caller moves the partition's clock past the day: a crash
        # in between closes the day again on redelivery; a lost report would leave its
        # cohort's round incomplete for ever.
        for ack in sent:
            await ack
        await self.alerts.review(partition, students, day, history_starts)
        with processing(event):
            self._forget_day_records(partition, day - timedelta(days=self.keep_days))
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
        reports: dict[tuple[str, date], dict[str, list[Any]]] = {}
        for sid, first in late.items():
            student = self.roster.get(sid)
            if student is None:
                continue  # not in scope (or not in the reference data): kept, not scored
            for as_of in amended_as_of_dates(first, closed, self.roster.window_days(student)):
                reports.setdefault((student.cohort, as_of), {})[sid] = self._entry(student, as_of)
        sent = []
        for (cohort, as_of), scores in sorted(reports.items()):
            sent.append(
                await self.cohort_scores.send(
                    key=cohort.encode(),
                    value={
                        "cohort": cohort,
                        "as_of": as_of.isoformat(),
                        "partition": partition,
                        "partitions": self.settings.partitions,
                        "scores": scores,
                        "late": True,
                    },
                )
            )
        for ack in sent:
            await ack
        rescored = [s for sid in late if (s := self.roster.get(sid)) is not None]
        await self.alerts.review(partition, rescored, closed, history_starts)
        log.info(
            "late events on partition %d: %d students rescored for %d cohort-days",
            partition,
            len(late),
            len(reports),
        )

    def _entry(self, student: Student, as_of: date) -> list[Any]:
        """A student's line in a report: [score, window days, breakdown]."""
        window = self.roster.window_days(student)
        totals = self._totals_of(student.student_id)
        return [
            student_score(totals, as_of, window, self.policy),
            window,
            window_breakdown(totals, as_of, window),
        ]

    def _totals_of(self, student_id: str) -> Any:
        def totals_on(day: date) -> Mapping[str, int] | None:
            value = self.daily_totals.get(totals_key(student_id, day))
            return day_sources(value) if value else None

        return totals_on

    def _forget_day_records(self, partition: int, before: date) -> None:
        """Storage limitation: drop this partition's day records older than any use."""
        cutoff = before.isoformat()
        for key in list(self.daily_totals.keys()):
            sid, _, day = key.rpartition("|")
            # cheap date test first: hashing every key for its partition is not
            if day < cutoff and partition_for(sid, self.settings.partitions) == partition:
                del self.daily_totals[key]
