"""Late events: when one is too late, and which as-of dates it amends. Pure, no I/O.

A partition's days close in order; an event for a day already closed is *late*. Inside the
lateness horizon it still counts, and every closed as-of date whose window holds its day
must be scored again; beyond the horizon the day is final and the event is refused (the
worker dead-letters it). The worker and the model test in tests/unit share these rules.
"""

from __future__ import annotations

from datetime import date, timedelta

__all__ = ["amended_as_of_dates", "days_late", "is_too_late"]


def days_late(day: date, closed: date | None) -> int | None:
    """How many days ago ``day`` closed (0: it was the last to close); None if still open."""
    if closed is None or day > closed:
        return None
    return (closed - day).days


def is_too_late(day: date, closed: date | None, horizon_days: int) -> bool:
    """A day closed ``horizon_days`` or more days ago is final (0: late events refused)."""
    late = days_late(day, closed)
    return late is not None and late >= horizon_days


def amended_as_of_dates(first: date, closed: date, window_days: int) -> list[date]:
    """The closed as-of dates whose ``window_days``-day window holds ``first`` or a later
    day, oldest first: the dates to score again after late events from ``first`` on."""
    last = min(closed, first + timedelta(days=window_days - 1))
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
