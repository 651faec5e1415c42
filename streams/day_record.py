"""A (student, local date) day record: what the ``daily_totals`` table holds per key.

Per-source totals in integer thousandths (so arrival order cannot change a sum) and the
fingerprints of the events counted, written together as one changelog record: after a
crash a re-read event is either recognised as counted or counted afresh, never twice.

A worker holds every day record of the last 28 days in memory (longest window + lateness
horizon), so the stored value is one string, ~200 bytes a day with its key where a dict
of a dict and a list of strings took ~800 (docs/benchmarks.md, section 4)::

    "1|1250,,,,10000,|433911c6eb0da120d0ad50f1"

the layout version; the totals in the order of ``leap.scoring.SOURCES``, empty for a
source with no events (append-only: stored records refer to sources by position); the
counted events' 12-hex-char fingerprints, sorted and concatenated. JSON (the table
serializer) carries it as it is. Records written before it, ``{"s": {source: total},
"ids": [fingerprint]}``, are still read, so a running deployment's changelogs recover.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from leap.scoring import SOURCES, Policy, daily_engagement

__all__ = [
    "DayRecord",
    "day_breakdown",
    "day_fingerprints",
    "day_sources",
    "event_fingerprint",
    "totals_key",
]

LAYOUT = "1"
FINGERPRINT_CHARS = 12
_KNOWN = frozenset(SOURCES)


def totals_key(student_id: str, day: date) -> str:
    return f"{student_id}|{day.isoformat()}"


def event_fingerprint(event_id: str) -> str:
    """48 bits of the event id: enough to tell apart one student-day's events, in 12 chars."""
    return hashlib.blake2b(event_id.encode(), digest_size=6).hexdigest()


def day_sources(value: Any) -> Mapping[str, int]:
    """The per-source totals of a stored day record, without building a ``DayRecord``."""
    if not value:
        return {}
    if isinstance(value, str):
        return _sources(_fields(value)[0])
    return value["s"]


def day_fingerprints(value: Any) -> list[str]:
    """The fingerprints a stored day record counted, one per counted event as stored."""
    if not value:
        return []
    if isinstance(value, str):
        return _unpack(_fields(value)[1])
    return list(value["ids"])


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
    def from_table(cls, value: str | Mapping[str, Any] | None) -> DayRecord:
        if not value:
            return cls()
        if isinstance(value, str):
            sources, fingerprints = _fields(value)
            return cls(_sources(sources), set(_unpack(fingerprints)))
        return cls(dict(value["s"]), set(value["ids"]))

    def to_table(self) -> str:
        if not self.sources.keys() <= _KNOWN:
            raise ValueError(f"sources outside SOURCES: {sorted(self.sources.keys() - _KNOWN)}")
        get = self.sources.get
        totals = ",".join(["" if (total := get(s)) is None else str(total) for s in SOURCES])
        fingerprints = "".join(sorted(self.counted))
        if len(fingerprints) != FINGERPRINT_CHARS * len(self.counted):
            raise ValueError("a counted fingerprint is not event_fingerprint's 12 characters")
        return f"{LAYOUT}|{totals}|{fingerprints}"


def _fields(value: str) -> tuple[str, str]:
    """A stored string's totals and fingerprints fields."""
    try:
        version, totals, fingerprints = value.split("|")
    except ValueError:
        version = ""
    if version != LAYOUT:
        raise ValueError(f"not a day record of layout {LAYOUT}: {value[:40]!r}")
    return totals, fingerprints


def _sources(totals: str) -> dict[str, int]:
    # not strict: a record written before a source was appended to SOURCES has fewer fields
    fields = zip(SOURCES, totals.split(","), strict=False)
    return {source: int(total) for source, total in fields if total}


def _unpack(fingerprints: str) -> list[str]:
    if len(fingerprints) % FINGERPRINT_CHARS:
        raise ValueError(f"packed fingerprints of {len(fingerprints)} characters")
    step = FINGERPRINT_CHARS
    return [fingerprints[n : n + step] for n in range(0, len(fingerprints), step)]
