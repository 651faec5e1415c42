"""No-engagement alerts: when one is raised and when it is cleared. Pure, no I/O.

A student in scope with no activity at all on N consecutive local term days (holidays
don't count, either way) gets one alert when the Nth day closes, not one a day after it.
It is cleared as soon as the streak is broken (activity resumes, or late data shows there
was some) or the student opts out of contact. Holidays and opt-outs never raise one. An
alert prompts a human; nothing in LEAP acts on a student automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Literal

__all__ = ["AlertAction", "inactive_days", "review_alert"]

AlertAction = Literal["raise", "clear"]


def inactive_days(
    engagement_on: Callable[[date], float],
    as_of: date,
    is_holiday: Callable[[date], bool],
    history_starts: date,
    enough: int,
) -> int:
    """Term days without activity ending ``as_of``, counting back no further than
    ``history_starts`` (the first day LEAP has data for) and stopping at ``enough``."""
    count = 0
    day = as_of
    while day >= history_starts and count < enough:
        if not is_holiday(day):
            if engagement_on(day) > 0:
                break
            count += 1
        day -= timedelta(days=1)
    return count


def review_alert(
    raised: bool, inactive: int, threshold: int, contact_allowed: bool, holiday: bool
) -> AlertAction | None:
    """What to publish for one student at a day's close, given the alert's state."""
    if raised:
        return "clear" if inactive < threshold or not contact_allowed else None
    if inactive >= threshold and contact_allowed and not holiday:
        return "raise"
    return None
