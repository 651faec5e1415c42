"""The batch path: the same scoring rules over a file of events, as of one date.

This is the oracle the stream is tested against, and the way to recompute a term.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from leap.institution import Institution
from leap.reference import Student
from leap.roster import Roster
from leap.scoring import LABELS, Policy, local_date, score_cohort, student_score, to_milli

__all__ = ["DailyTotalsBook", "indicators_as_of"]


@dataclass
class DailyTotalsBook:
    """Per-student, per-local-date, per-source totals of deduplicated events."""

    zone: ZoneInfo
    totals: dict[str, dict[date, dict[str, int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    )
    seen: set[str] = field(default_factory=set)
    duplicates: int = 0

    def add(self, event: Mapping[str, Any]) -> bool:
        """Count one canonical event once; returns False for a repeated ``event_id``."""
        if event["event_id"] in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(event["event_id"])
        occurred: datetime = event["occurred_at"]
        day = local_date(occurred, self.zone)
        self.totals[event["student_id"]][day][event["source"]] += to_milli(event["quantity"])
        return True

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
    roster = Roster(institution or Institution(), policy, 1, students.values())
    cohorts: dict[str, dict[str, float]] = defaultdict(dict)
    for sid, student in roster.items():
        days = book.totals.get(sid, {})
        cohorts[student.cohort][sid] = student_score(
            days.get, as_of, roster.window_days(student), policy
        )
    results = []
    for scores in cohorts.values():
        cohort = score_cohort(scores, policy)
        for sid, score in scores.items():
            student = roster[sid]
            indicator = cohort.indicators[sid]
            results.append(
                {
                    "student_id": sid,
                    "as_of": as_of.isoformat(),
                    "indicator": indicator,
                    "label": LABELS[indicator],
                    "score": score,
                    "reference_score": cohort.reference_score,
                    "window_days": roster.window_days(student),
                    "course": student.course,
                    "year": student.year,
                    "policy_version": policy.version,
                }
            )
    return sorted(results, key=lambda r: r["student_id"])
