"""The batch path: the same scoring rules over a file of events, as of one date.

This is the oracle the stream is tested against, and the way to recompute a term.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from leap.institution import Institution
from leap.reference import Student
from leap.scoring import LABELS, Policy, local_date, score_cohort, student_score, to_milli

__all__ = ["DailyTotalsBook", "indicators_as_of"]

_MAX_QUANTITIES = 4096


@dataclass
class DailyTotalsBook:
    """Per-student, per-local-date, per-source totals of deduplicated events."""

    zone: ZoneInfo
    # Plain dicts: a dict of only strings and ints is not tracked by the garbage collector,
    # and with a million events the collector's passes over the book were a fifth of a
    # replay (measured, bench/replay.py).
    totals: dict[str, dict[date, dict[str, int]]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    duplicates: int = 0
    #: UTC hour (counted from 0001-01-01) -> the local date of every instant in it, for
    #: hours that hold no change of offset and no local midnight (all but one or two a day).
    _day_of_hour: dict[int, date] = field(default_factory=dict, repr=False)
    #: ``to_milli`` of the quantities seen (most events count 1, or whole minutes): its
    #: ``round`` cost a tenth of the counting. Floats only: an int of the same value can
    #: round differently.
    _milli: dict[float, int] = field(default_factory=dict, repr=False)

    def add(self, event: Mapping[str, Any]) -> bool:
        """Count one canonical event once; returns False for a repeated ``event_id``."""
        event_id, seen = event["event_id"], self.seen
        if event_id in seen:
            self.duplicates += 1
            return False
        seen.add(event_id)
        occurred: datetime = event["occurred_at"]
        if occurred.tzinfo is UTC:  # as every validated event's is
            # The UTC hour as a number without ``timestamp()``, which cost 3x as much.
            hour = occurred.toordinal() * 24 + occurred.hour
            day = self._day_of_hour.get(hour) or self._local_date(occurred, hour)
        else:
            day = local_date(occurred, self.zone)
        student_id = event["student_id"]
        days = self.totals.get(student_id)
        if days is None:
            days = self.totals[student_id] = {}
        sources = days.get(day)
        if sources is None:
            sources = days[day] = {}
        source, quantity = event["source"], event["quantity"]
        milli = self._milli.get(quantity) if type(quantity) is float else None
        if milli is None:
            milli = to_milli(quantity)
            if type(quantity) is float and len(self._milli) < _MAX_QUANTITIES:
                self._milli[quantity] = milli
        sources[source] = sources.get(source, 0) + milli
        return True

    def _local_date(self, instant: datetime, hour: int) -> date:
        """``leap.scoring.local_date``, remembered for the whole UTC ``hour`` when that is
        exact (converting every instant cost a tenth of a replay)."""
        day = local_date(instant, self.zone)
        first = instant.replace(minute=0, second=0, microsecond=0)
        last = first + timedelta(hours=1, microseconds=-1)
        same_offset = (
            first.astimezone(self.zone).utcoffset() == last.astimezone(self.zone).utcoffset()
        )
        if same_offset and local_date(first, self.zone) == local_date(last, self.zone):
            self._day_of_hour[hour] = day
        return day

    def add_all(self, events: Iterable[Mapping[str, Any]]) -> None:
        for event in events:
            self.add(event)


def indicators_as_of(
    book: DailyTotalsBook,
    students: Mapping[str, Student],
    policy: Policy,
    as_of: date,
    institution: Institution | None = None,
) -> list[dict[str, Any]]:
    """One result per student in scope (by default: all of ``students``), by student id."""
    scope = institution or Institution()
    # The roster's rules (``leap.roster``), without its index by partition: a replay has no
    # partitions, and hashing every student id for one cost a fifth of the scoring time.
    in_scope = {sid: s for sid, s in students.items() if scope.in_scope(s)}
    windows = {sid: scope.window_days(s, policy) for sid, s in in_scope.items()}
    cohorts: dict[str, dict[str, float]] = defaultdict(dict)
    empty: dict[date, dict[str, int]] = {}
    for sid, student in in_scope.items():
        days = book.totals.get(sid, empty)
        cohorts[student.cohort][sid] = student_score(days.get, as_of, windows[sid], policy)
    results = []
    for scores in cohorts.values():
        cohort = score_cohort(scores, policy)
        for sid, score in scores.items():
            student = in_scope[sid]
            indicator = cohort.indicators[sid]
            results.append(
                {
                    "student_id": sid,
                    "as_of": as_of.isoformat(),
                    "indicator": indicator,
                    "label": LABELS[indicator],
                    "score": score,
                    "reference_score": cohort.reference_score,
                    "window_days": windows[sid],
                    "course": student.course,
                    "year": student.year,
                    "policy_version": policy.version,
                }
            )
    return sorted(results, key=lambda r: r["student_id"])
