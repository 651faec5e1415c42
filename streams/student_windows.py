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


#: A window's array: each window day's engagement (oldest first), then the per-source
#: totals over the window (thousandths, in SOURCES order), then the days with activity.
#: One array of doubles (integers below 2**53 are exact in them, as are their sums), not
#: an object holding two arrays: ~230 bytes a student with its entry in the partition's
#: dict, where that took ~400 (bench/memory.py, at 50,000 students, a tenth on 21 days).
_TAIL = len(SOURCES) + 1
Window = array


def _read(as_of: date, window_days: int, totals_on: TotalsOn, policy: Policy) -> Window:
    """A window read whole: every one of its days' totals."""
    engagement, tail = [], array("d", bytes(8 * _TAIL))
    for day in window_dates(as_of, window_days):
        totals = totals_on(day)
        engagement.append(daily_engagement(totals, policy) if totals else 0.0)
        _add(tail, 0, totals, 1)
    return array("d", engagement) + tail


def _slide(window: Window, leaving: Totals | None, coming: Totals | None, policy: Policy) -> None:
    """Move on by a day: the oldest day's totals ``leaving`` drop out, the new day's totals
    ``coming`` come in."""
    days = len(window) - _TAIL
    _add(window, days, leaving, -1)
    _add(window, days, coming, 1)
    del window[0]
    window.insert(days - 1, daily_engagement(coming, policy) if coming else 0.0)


def _add(window: Window, days: int, totals: Totals | None, sign: int) -> None:
    """Add (or take away) a day's totals to the tail that starts at ``days``."""
    if not totals:
        return
    active = 0
    for source, amount in totals.items():
        if amount:
            active = 1
            position = _POSITION.get(source)
            if position is not None:  # unknown sources count for nothing (and are refused)
                window[days + position] += sign * amount
    window[days + _TAIL - 1] += sign * active


def _summary(window: Window) -> WindowSummary:
    days = len(window) - _TAIL
    units = tuple(map(int, window[days:-1]))
    return WindowSummary(window_average(window[:days], days), days, int(window[-1]), units)


class StudentWindows:
    """The windows of the students on one worker's partitions, by partition: each
    partition's windows are all as of the day it last closed."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._by_partition: dict[int, tuple[date, dict[str, Window]]] = {}

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
        kept_as_of, kept = self._by_partition.get(partition, (date.min, {}))
        if kept_as_of != as_of - ONE_DAY:
            kept = {}  # not slid from the day before: every window is read whole
        policy = self.policy
        leaving: dict[int, date] = {}  # window days -> the day that drops out of them
        windows: dict[str, Window] = {}
        summaries: dict[str, WindowSummary] = {}
        for sid, window_days in students:
            window, totals_on = kept.get(sid), totals_of(sid)
            if window is not None and len(window) - _TAIL == window_days:
                gone = leaving.get(window_days)
                if gone is None:
                    gone = leaving[window_days] = as_of - timedelta(days=window_days)
                _slide(window, totals_on(gone), totals_on(as_of), policy)
            else:
                window = _read(as_of, window_days, totals_on, policy)
            windows[sid] = window
            summaries[sid] = _summary(window)
        self._by_partition[partition] = (as_of, windows)
        return summaries

    def engagement_on(self, partition: int, student_id: str, day: date) -> float | None:
        """A kept day's engagement; None if ``day`` is not in the student's kept window."""
        as_of, kept = self._by_partition.get(partition, (date.min, {}))
        window = kept.get(student_id)
        if window is None:
            return None
        back, days = (as_of - day).days, len(window) - _TAIL
        return window[days - 1 - back] if 0 <= back < days else None

    def forget(self, partition: int, student_ids: Iterable[str]) -> None:
        """Late events changed these students' closed days: read them whole next time."""
        _, kept = self._by_partition.get(partition, (date.min, {}))
        for sid in student_ids:
            kept.pop(sid, None)

    def clear(self) -> None:
        """Partitions moved: what another worker did to them meanwhile is not in here."""
        self._by_partition.clear()


def read_summary(
    totals_on: TotalsOn, as_of: date, window_days: int, policy: Policy
) -> WindowSummary:
    """A window read whole (for a late event's past as-of dates)."""
    return _summary(_read(as_of, window_days, totals_on, policy))
