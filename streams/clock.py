"""When a partition's local day closes. Pure, so both clocks share one rule.

A partition's *watermark* is how far time has got for it: the wall clock (``wall``)
or the newest event / clock tick seen on it (``event``). Day ``d`` closes once the
watermark passes ``d``'s local midnight end plus the grace period for late feeds.
Clock ticks (records carrying the ``leap-clock`` header) move idle partitions on.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from leap.scoring import day_end, local_date

__all__ = [
    "CLOCK_HEADER",
    "MAX_CATCH_UP_DAYS",
    "close_instant",
    "days_to_close",
    "last_closable_day",
]

CLOCK_HEADER = "leap-clock"
#: A worker down for longer than this closes only the most recent days on return.
MAX_CATCH_UP_DAYS = 31


def close_instant(day: date, zone: ZoneInfo, grace: timedelta) -> datetime:
    """When ``day`` closes: its local end plus ``grace`` of *elapsed* time (added in UTC,
    so a grace spanning a clock change is still two real hours, not two wall hours)."""
    return day_end(day, zone).astimezone(UTC) + grace


def last_closable_day(watermark_ms: int, zone: ZoneInfo, grace: timedelta) -> date:
    """The newest local day whose end + grace the watermark has passed."""
    now = datetime.fromtimestamp(watermark_ms / 1000, UTC)
    # The local day containing (now - grace) is still open; the one before it is not.
    return local_date(now - grace, zone) - timedelta(days=1)


def days_to_close(
    last_closed: date | None, watermark_ms: int, zone: ZoneInfo, grace: timedelta
) -> list[date]:
    """Days to close now, oldest first. A partition seen for the first time closes none:
    it starts counting from the day its first record belongs to."""
    newest = last_closable_day(watermark_ms, zone, grace)
    if last_closed is None or newest <= last_closed:
        return []
    first = max(last_closed + timedelta(days=1), newest - timedelta(days=MAX_CATCH_UP_DAYS - 1))
    return [first + timedelta(days=n) for n in range((newest - first).days + 1)]
