"""Each student's window as of the last day closed, slid one day per close.

A day close scores every student over their last 7 (or 21) days. Reading and weighing each
window day again at every close made it a recompute of the whole window; the worker keeps,
per student, each window day's engagement and the window's per-source totals instead, so a
close reads two day records (the day coming in and the one dropping out) and a score sums
the kept engagement in ``leap.scoring.window_average``'s order: the same float a full
recompute (``student_score``, ``leap replay``) gives. Per-source totals are integers in
thousandths, so adding one day and subtracting another is exact.

What is kept is a cache of the ``daily_totals`` table, valid only while nothing else
changes a day inside a window: late events (``forget`` the students they touched) and a
rebalance, after which another worker may have amended this one's days (``clear``). A
window not slid from the day before is read whole again. The no-engagement alerts read
the days' engagement kept here too (``engagement_on``).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, NamedTuple

from leap.scoring import (
    SOURCES,
    Policy,
    Totals,
    breakdown_of,
    daily_engagement,
    window_average,
    window_dates,
)

__all__ = ["StudentWindows", "WindowSummary", "read_summary"]

ONE_DAY = timedelta(days=1)
_POSITION = {source: n for n, source in enumerate(SOURCES)}

#: Reads a student's totals for one local date (None or empty: no activity).
TotalsOn = Callable[[date], Totals | None]


class WindowSummary(NamedTuple):
    """A student's score as of a day, and what it was worked out from: the days with
    activity and the per-source totals (thousandths, in ``SOURCES`` order)."""

    score: float
    window_days: int
    active_days: int
    units: tuple[int, ...]

    @property
    def breakdown(self) -> dict[str, Any]:
        """As ``leap.scoring.window_breakdown`` gives it."""
        return breakdown_of(dict(zip(SOURCES, self.units, strict=True)), self.active_days)


@dataclass(slots=True)
class _Window:
    """Arrays of machine numbers, not lists of Python objects: with its entry in the
    partition's dict, ~500 bytes a student (measured at 50,000, a tenth on 21 days)."""

    as_of: date
    engagement: array  # 'd': each window day's engagement, oldest first
    units: array  # 'q': per-source totals over the window, thousandths, in SOURCES order
    active_days: int

    @classmethod
    def read(cls, as_of: date, window_days: int, totals_on: TotalsOn, policy: Policy) -> _Window:
        window = cls(as_of, array("d"), array("q", bytes(8 * len(SOURCES))), 0)
        engagement = []
        for day in window_dates(as_of, window_days):
            totals = totals_on(day)
            engagement.append(daily_engagement(totals, policy) if totals else 0.0)
            window._add(totals, 1)
        window.engagement.extend(engagement)
        return window

    def slide(
        self, as_of: date, leaving: Totals | None, coming: Totals | None, policy: Policy
    ) -> None:
        """Move on to ``as_of``, the day after: the oldest day's totals ``leaving`` drop
        out, ``as_of``'s totals ``coming`` come in."""
        self._add(leaving, -1)
        self._add(coming, 1)
        self.as_of = as_of
        del self.engagement[0]
        self.engagement.append(daily_engagement(coming, policy) if coming else 0.0)

    def _add(self, totals: Totals | None, sign: int) -> None:
        if not totals:
            return
        units, positions, active = self.units, _POSITION, 0
        for source, amount in totals.items():
            if amount:
                active = 1
                position = positions.get(source)
                if position is not None:  # unknown sources count for nothing (and are refused)
                    units[position] += sign * amount
        self.active_days += sign * active

    def engagement_on(self, day: date) -> float | None:
        back = (self.as_of - day).days
        if 0 <= back < len(self.engagement):
            return self.engagement[-1 - back]
        return None

    def summary(self) -> WindowSummary:
        days = len(self.engagement)
        return WindowSummary(
            window_average(self.engagement, days), days, self.active_days, tuple(self.units)
        )


class StudentWindows:
    """The windows of the students on one worker's partitions, by partition."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._by_partition: dict[int, dict[str, _Window]] = {}

    def close(
        self,
        partition: int,
        as_of: date,
        students: Iterable[tuple[str, int]],
        totals_of: Callable[[str], TotalsOn],
    ) -> dict[str, WindowSummary]:
        """Each of ``students`` ((id, window days), all of the partition's) as of ``as_of``;
        ``totals_of(student_id)`` reads that student's day records. Only these students'
        windows are kept for the partition from now on."""
        kept = self._by_partition.get(partition, {})
        policy, yesterday = self.policy, as_of - ONE_DAY
        leaving: dict[int, date] = {}  # window days -> the day that drops out of them
        windows: dict[str, _Window] = {}
        summaries: dict[str, WindowSummary] = {}
        for sid, window_days in students:
            window, totals_on = kept.get(sid), totals_of(sid)
            if (
                window is not None
                and window.as_of == yesterday
                and len(window.engagement) == window_days
            ):
                gone = leaving.get(window_days)
                if gone is None:
                    gone = leaving[window_days] = as_of - timedelta(days=window_days)
                window.slide(as_of, totals_on(gone), totals_on(as_of), policy)
            else:
                window = _Window.read(as_of, window_days, totals_on, policy)
            windows[sid] = window
            summaries[sid] = window.summary()
        self._by_partition[partition] = windows
        return summaries

    def engagement_on(self, partition: int, student_id: str, day: date) -> float | None:
        """A kept day's engagement; None if ``day`` is not in the student's kept window."""
        window = self._by_partition.get(partition, {}).get(student_id)
        return None if window is None else window.engagement_on(day)

    def forget(self, partition: int, student_ids: Iterable[str]) -> None:
        """Late events changed these students' closed days: read them whole next time."""
        kept = self._by_partition.get(partition, {})
        for sid in student_ids:
            kept.pop(sid, None)

    def clear(self) -> None:
        """Partitions moved: what another worker did to them meanwhile is not in here."""
        self._by_partition.clear()


def read_summary(
    totals_on: TotalsOn, as_of: date, window_days: int, policy: Policy
) -> WindowSummary:
    """A window read whole (for a late event's past as-of dates)."""
    return _Window.read(as_of, window_days, totals_on, policy).summary()
