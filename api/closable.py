"""The last local day that should have closed by now, as each read needs it.

Every engagement read says whether its record is stale, i.e. older than this day.
Computing it takes time-zone arithmetic (~10 µs, measured under load by bench/api.py),
yet its answer changes once a day: so the answer is kept with the span of time it holds
for, from the instant that day closed to the instant the next one closes, and computed
again only outside that span (clock changes and a wall clock set back included).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from streams.clock import close_instant, last_closable_day

__all__ = ["ClosableDay"]


class ClosableDay:
    """``streams.clock.last_closable_day`` of the current time, recomputed when it changes."""

    def __init__(
        self, zone: ZoneInfo, grace: timedelta, clock: Callable[[], float] = time.time
    ) -> None:
        self.zone = zone
        self.grace = grace
        self.clock = clock
        self._day = date.min
        self._span = (0, 0)  # [from, until) in Unix milliseconds: empty until first asked

    def now(self) -> date:
        """The newest local day whose end + grace has passed."""
        now_ms = int(self.clock() * 1000)
        start, until = self._span
        if not start <= now_ms < until:
            day = last_closable_day(now_ms, self.zone, self.grace)
            self._day = day
            self._span = (self._closes_ms(day), self._closes_ms(day + timedelta(days=1)))
        return self._day

    def _closes_ms(self, day: date) -> int:
        """The first millisecond at which ``day`` is closable (its close instant, rounded up)."""
        instant = close_instant(day, self.zone, self.grace).timestamp()
        return math.ceil(instant * 1000)
