"""How a student's engagement indicator is worked out. Pure: no I/O, no clocks.

The stream, ``leap replay`` and the benchmarks all call these functions, so a
replayed term and a live one cannot disagree about the rules.

1. Each activity event adds its ``quantity`` to the student's total for that source on
   the *local* date it happened (the institution's time zone, DST-correct).
   Totals are kept in thousandths as integers, so the order events arrive in can never
   change a sum.
2. A day's engagement = sum over sources of ``weight * min(total, cap)``.
3. A student's score = the average daily engagement over the last ``window_days``
   local days ending with the as-of date (days with no activity count as 0).
4. The cohort's reference = the median score of the cohort (course + year), or the
   policy's absolute reference for small or silent cohorts.
5. The indicator = the first band whose ``min_ratio`` ``score / reference`` reaches;
   a score of 0 is always ``very_low``.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

__all__ = [
    "INDICATORS",
    "LABELS",
    "SOURCES",
    "Band",
    "CohortResult",
    "Indicator",
    "Policy",
    "SourceRule",
    "band",
    "breakdown_of",
    "cohort_reference",
    "daily_engagement",
    "day_end",
    "local_date",
    "policy_from_mapping",
    "score_cohort",
    "student_score",
    "to_milli",
    "window_average",
    "window_breakdown",
    "window_dates",
    "window_score",
]

Indicator = Literal["high", "good", "partial", "low", "very_low"]
INDICATORS: tuple[Indicator, ...] = ("high", "good", "partial", "low", "very_low")
LABELS: dict[str, str] = {
    "high": "High",
    "good": "Good",
    "partial": "Partial",
    "low": "Low",
    "very_low": "Very Low",
}
SOURCES = ("moodle", "computer_login", "submission", "lecture_capture", "attendance", "library")

#: Daily totals: source -> thousandths of a unit (e.g. 90_000 = 90 minutes viewed).
Totals = Mapping[str, int]


@dataclass(frozen=True)
class SourceRule:
    weight: float
    cap: float


@dataclass(frozen=True)
class Band:
    indicator: Indicator
    min_ratio: float


@dataclass(frozen=True)
class Policy:
    """One versioned set of rules; see ``leap/policies/*.toml`` for the numbers."""

    version: str
    sources: Mapping[str, SourceRule]
    default_window_days: int
    window_days_by_mode: Mapping[str, int]
    min_cohort_size: int
    absolute_reference: float
    bands: tuple[Band, ...]

    def window_days(self, mode: str) -> int:
        return self.window_days_by_mode.get(mode, self.default_window_days)

    @property
    def longest_window_days(self) -> int:
        return max([self.default_window_days, *self.window_days_by_mode.values()])


def policy_from_mapping(data: Mapping[str, Any]) -> Policy:
    """Build and check a policy from its parsed TOML; raises ValueError saying what is wrong."""
    try:
        sources = {
            name: SourceRule(float(rule["weight"]), float(rule["cap"]))
            for name, rule in data["sources"].items()
        }
        window = data["window"]
        bands = tuple(Band(b["indicator"], float(b["min_ratio"])) for b in data["bands"])
        policy = Policy(
            version=str(data["version"]),
            sources=sources,
            default_window_days=int(window["default_days"]),
            window_days_by_mode={k: int(v) for k, v in window.get("by_mode", {}).items()},
            min_cohort_size=int(data["cohort"]["min_size"]),
            absolute_reference=float(data["cohort"]["absolute_reference"]),
            bands=bands,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"policy is missing or mistypes {exc}") from exc
    ratios = [b.min_ratio for b in bands]
    numbers = [policy.absolute_reference, *ratios]
    numbers += [n for r in sources.values() for n in (r.weight, r.cap)]
    if not all(math.isfinite(n) for n in numbers):
        raise ValueError("policy numbers must be finite (no nan or inf)")
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"policy names unknown sources {sorted(unknown)}; known: {SOURCES}")
    if any(r.weight < 0 or r.cap < 0 for r in sources.values()):
        raise ValueError("policy weights and caps must be >= 0")
    if [b.indicator for b in bands] != list(INDICATORS):
        raise ValueError(f"policy bands must be exactly {INDICATORS}, in that order")
    if ratios != sorted(ratios, reverse=True) or ratios[-1] != 0.0:
        raise ValueError("band min_ratio values must fall from high to very_low, ending at 0")
    if policy.absolute_reference <= 0:
        raise ValueError("cohort.absolute_reference must be > 0")
    if min([policy.default_window_days, *policy.window_days_by_mode.values()]) < 1:
        raise ValueError("window days must be >= 1")
    return policy


def to_milli(quantity: float) -> int:
    """An event's quantity in integer thousandths, so sums are exact and order-free."""
    return round(quantity * 1000)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    """The institution's calendar date of an aware instant (DST handled by zoneinfo)."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(zone).date()


def day_end(day: date, zone: ZoneInfo) -> datetime:
    """The aware instant the local day ends: local midnight that starts the next day."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)


def daily_engagement(totals: Totals, policy: Policy) -> float:
    """One day's weighted, capped engagement; unknown sources count for nothing."""
    engagement = 0.0
    for source in sorted(totals):
        rule = policy.sources.get(source)
        if rule is not None:
            engagement += rule.weight * min(totals[source] / 1000, rule.cap)
    return engagement


@functools.lru_cache(maxsize=64)
def window_dates(as_of: date, window_days: int) -> tuple[date, ...]:
    """The local dates a score covers, oldest first, ending with ``as_of``. Cached: every
    student of a close asks for one of the same few windows."""
    return tuple(as_of - timedelta(days=n) for n in range(window_days - 1, -1, -1))


def window_average(engagement: Iterable[float], window_days: int) -> float:
    """A score from each window day's engagement, oldest first. Float sums depend on their
    order, so everything that scores a window (a full recompute or the stream's days kept
    from earlier closes) sums through here, oldest day first, and gets the same float."""
    return sum(engagement) / window_days


def window_score(daily: Mapping[date, float], as_of: date, window_days: int) -> float:
    """Average daily engagement over the window; missing days count as zero."""
    return window_average(
        [daily.get(day, 0.0) for day in window_dates(as_of, window_days)], window_days
    )


def student_score(
    totals_on: Callable[[date], Totals | None], as_of: date, window_days: int, policy: Policy
) -> float:
    """A student's score, reading each window day's totals through ``totals_on``."""
    engagement = []
    for day in window_dates(as_of, window_days):
        totals = totals_on(day)
        engagement.append(daily_engagement(totals, policy) if totals else 0.0)
    return window_average(engagement, window_days)


def window_breakdown(
    totals_on: Callable[[date], Totals | None], as_of: date, window_days: int
) -> dict[str, Any]:
    """What a window's score was worked out from, small enough to keep every day: units
    per source over the window (as recorded, before caps; sources with a total) and the
    days with any activity."""
    units: dict[str, int] = {}
    active_days = 0
    for day in window_dates(as_of, window_days):
        totals = totals_on(day)
        if totals:
            active_days += any(totals.values())
            for source, amount in totals.items():
                units[source] = units.get(source, 0) + amount
    return breakdown_of(units, active_days)


def breakdown_of(units: Mapping[str, int], active_days: int) -> dict[str, Any]:
    """A window's breakdown from its per-source totals in thousandths (zeros left out, so
    a total kept by adding and subtracting days gives the same breakdown as a re-read)."""
    return {
        "sources": {s: v / 1000 for s, v in sorted(units.items()) if v},
        "active_days": active_days,
    }


def cohort_reference(scores: Iterable[float], policy: Policy) -> float:
    """The score a cohort's typical student has, or the absolute fallback."""
    values = sorted(scores)
    if len(values) < policy.min_cohort_size:
        return policy.absolute_reference
    median = statistics.median(values)
    return median if median > 0 else policy.absolute_reference


def band(score: float, reference: float, policy: Policy) -> Indicator:
    """Map a score to one of the five indicators, relative to the cohort reference."""
    if score <= 0:
        return "very_low"
    ratio = score / reference
    for b in policy.bands:
        if ratio >= b.min_ratio:
            return b.indicator
    return "very_low"


@dataclass(frozen=True)
class CohortResult:
    reference_score: float
    indicators: dict[str, Indicator]


def score_cohort(scores: Mapping[str, float], policy: Policy) -> CohortResult:
    """Band every student of one cohort against the cohort's reference."""
    reference = cohort_reference(scores.values(), policy)
    return CohortResult(
        reference_score=reference,
        indicators={sid: band(score, reference, policy) for sid, score in scores.items()},
    )
