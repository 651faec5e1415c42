"""A synthetic cohort for the demo and benchmarks: no real person is in it.

Students of the four seed courses (Essex Business School year 1; BA English
Literature, BSc Marine Biology and BSc Biological Sciences years 1-3) live a
timetabled week: lectures Monday to Friday, quieter weekends, a coursework deadline
every other Friday. Each has their own level of engagement, and about one in seven
drifts away part-way through, which is what the indicators should catch.
Everything is deterministic for a given seed.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from connectors.publisher import Tick
from leap.reference import REQUIRED_COLUMNS, STATUS_COLUMN, Student
from streams.clock import close_instant

__all__ = ["COHORTS", "SyntheticTerm", "make_students", "write_students"]

#: (course, years, department, share of the students)
COHORTS: tuple[tuple[str, tuple[int, ...], str, float], ...] = (
    ("EBS-BSC-BM", (1,), "Essex Business School", 0.19),
    ("BA-ENGLIT", (1, 2, 3), "Literature, Film and Theatre Studies", 0.27),
    ("BSC-MARBIO", (1, 2, 3), "Life Sciences", 0.27),
    ("BSC-BIOSCI", (1, 2, 3), "Life Sciences", 0.27),
)
WEEKDAY_FACTOR = (1.0, 1.0, 1.0, 0.95, 0.8, 0.35, 0.25)  # Monday first
SESSIONS_BY_WEEKDAY = (2, 2, 2, 2, 1, 0, 0)


def make_students(count: int, seed: int = 7) -> list[Student]:
    """``count`` students spread over the seed cohorts, ~10% part-time, 20 per tutor."""
    rng = random.Random(seed)
    students: list[Student] = []
    for course, years, department, share in COHORTS:
        per_year = max(1, round(count * share / len(years)))
        for year in years:
            for _ in range(per_year):
                number = len(students)
                students.append(
                    Student(
                        student_id=f"S{1_000_000 + number}",
                        course=course,
                        year=year,
                        mode="part-time" if rng.random() < 0.1 else "full-time",
                        department=department,
                        tutor_id=f"T{course.split('-')[-1]}{year}{number // 20:03d}",
                    )
                )
    return students


def write_students(students: list[Student], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*REQUIRED_COLUMNS, STATUS_COLUMN])
        for s in students:
            writer.writerow(
                [s.student_id, s.course, s.year, s.mode, s.department, s.tutor_id, s.status]
            )


@dataclass(frozen=True)
class _Habit:
    engagement: float  # 0..1, how much of what is on offer the student does
    drifts_on: date | None  # from this day on, engagement falls to a tenth


@dataclass
class SyntheticTerm:
    """``days`` local days of activity from ``start``, with the ticks that close them."""

    students: list[Student]
    start: date
    days: int
    zone: ZoneInfo
    grace: timedelta
    seed: int = 7

    def items(self) -> Iterator[dict[str, Any] | Tick]:
        """Each day's events, grouped by student, then a tick that closes the day."""
        rng = random.Random(self.seed)
        habits = {s.student_id: self._habit(rng) for s in self.students}
        yield Tick(_ms(close_instant(self.start - timedelta(days=1), self.zone, self.grace)))
        for offset in range(self.days):
            day = self.start + timedelta(days=offset)
            for student in self.students:
                yield from self._day(rng, student, habits[student.student_id], day)
            yield Tick(_ms(close_instant(day, self.zone, self.grace)))

    @property
    def last_day(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    def _habit(self, rng: random.Random) -> _Habit:
        drifts = rng.random() < 0.15
        drift_day = self.start + timedelta(days=rng.randrange(self.days // 3, self.days))
        return _Habit(rng.betavariate(2.5, 2.0), drift_day if drifts else None)

    def _day(
        self, rng: random.Random, student: Student, habit: _Habit, day: date
    ) -> Iterator[dict[str, Any]]:
        engagement = habit.engagement
        if habit.drifts_on is not None and day >= habit.drifts_on:
            engagement *= 0.1
        weekday = day.weekday()
        level = engagement * WEEKDAY_FACTOR[weekday]
        if student.mode == "part-time":
            level *= 0.5
        activity: list[tuple[str, str, float]] = []
        for _ in range(SESSIONS_BY_WEEKDAY[weekday]):
            if rng.random() < min(1.0, engagement * 1.2):
                activity.append(("attendance", "attended", 1.0))
        for _ in range(_poisson(rng, 2.5 * level)):
            activity.append(("moodle", "viewed", float(rng.randint(1, 15))))
        if rng.random() < 0.35 * level:
            activity.append(("lecture_capture", "watched", float(rng.randint(10, 70))))
        for _ in range(_poisson(rng, 1.0 * level)):
            activity.append(("computer_login", "logged_in", 1.0))
        if rng.random() < 0.15 * level:
            activity.append(("library", "visited", 1.0))
        deadline = weekday == 4 and (day - self.start).days // 7 % 2 == 1
        if deadline and rng.random() < min(1.0, engagement + 0.3):
            activity.append(("submission", "submitted", 1.0))
        for n, (source, action, quantity) in enumerate(activity):
            at = datetime.combine(day, time(rng.randint(7, 22), rng.randint(0, 59)), self.zone)
            yield {
                "event_id": f"synthetic:{self.seed}:{student.student_id}:{day}:{n}",
                "student_id": student.student_id,
                "source": source,
                "action": action,
                "occurred_at": at,
                "quantity": quantity,
                "course_id": student.course,
                "received_at": None,
                "attributes": {},
            }


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means a student-day has."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)
