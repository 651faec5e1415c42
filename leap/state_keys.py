"""The Redis layout the worker writes and the API reads, in one place.

``{prefix}indicator:{student_id}`` (hash): the last closed day's indicator:
    student_id, indicator, label, score, reference_score, as_of (YYYY-MM-DD),
    window_days, policy_version, course, year, updated_at (ISO-8601 UTC).
``{prefix}days:{student_id}`` (hash): one field per local date (YYYY-MM-DD) holding
    JSON ``{"engagement": float, "sources": {source: total}}``; it holds the open
    day ("today so far") and the closed days still inside the longest window.
``{prefix}cohort:{course}|{year}`` (hash): the cohort's distribution on its last banded day:
    as_of (YYYY-MM-DD), reference_score, policy_version, size (students banded), and one
    count per level: high, good, partial, low, very_low. Aggregates only: no student ids.
"""

__all__ = ["cohort_key", "days_key", "indicator_key"]


def indicator_key(prefix: str, student_id: str) -> str:
    return f"{prefix}indicator:{student_id}"


def days_key(prefix: str, student_id: str) -> str:
    return f"{prefix}days:{student_id}"


def cohort_key(prefix: str, course: str, year: int) -> str:
    """The cohort's distribution hash; ``course|year`` is ``Student.cohort``."""
    return f"{prefix}cohort:{course}|{year}"
