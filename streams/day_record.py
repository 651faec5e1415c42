"""A (student, local date) day record: what the ``daily_totals`` table holds per key.

Per-source totals in integer thousandths (so arrival order cannot change a sum) and the
fingerprints of the events counted, written together as one changelog record: after a
crash a re-read event is either recognised as counted or counted afresh, never twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from leap.scoring import Policy, daily_engagement

__all__ = ["DayRecord", "day_breakdown", "day_sources", "event_fingerprint", "totals_key"]


def totals_key(student_id: str, day: date) -> str:
    return f"{student_id}|{day.isoformat()}"


def event_fingerprint(event_id: str) -> str:
    """48 bits of the event id: enough to tell apart one student-day's events, in 12 chars."""
    return hashlib.blake2b(event_id.encode(), digest_size=6).hexdigest()


def day_sources(value: Any) -> Mapping[str, int]:
    """The per-source totals of a stored day record, without building a ``DayRecord``."""
    return value["s"] if value else {}


def day_breakdown(sources: Mapping[str, int], policy: Policy) -> dict[str, Any]:
    """A day as the API shows it (``leap.state_keys``): engagement and per-source totals."""
    return {
        "engagement": daily_engagement(sources, policy),
        "sources": {s: v / 1000 for s, v in sorted(sources.items())},
    }


@dataclass
class DayRecord:
    """One (student, local date): per-source totals in thousandths, and what was counted."""

    sources: dict[str, int] = field(default_factory=dict)
    counted: set[str] = field(default_factory=set)

    @classmethod
    def from_table(cls, value: Mapping[str, Any] | None) -> DayRecord:
        if not value:
            return cls()
        return cls(dict(value["s"]), set(value["ids"]))

    def to_table(self) -> dict[str, Any]:
        return {"s": dict(self.sources), "ids": sorted(self.counted)}
