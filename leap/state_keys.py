"""The Redis layout the worker writes and the API reads, in one place.

``{prefix}indicator:{student_id}`` (hash): the last closed day's indicator:
    student_id, indicator, label, score, reference_score, as_of (YYYY-MM-DD),
    window_days, policy_version, course, year, updated_at (ISO-8601 UTC).
``{prefix}days:{student_id}`` (hash): one field per local date (YYYY-MM-DD) holding
    JSON ``{"engagement": float, "sources": {source: total}}``; it holds the open
    day ("today so far") and the closed days still inside the longest window.
"""

__all__ = ["days_key", "indicator_key"]


def indicator_key(prefix: str, student_id: str) -> str:
    return f"{prefix}indicator:{student_id}"


def days_key(prefix: str, student_id: str) -> str:
    return f"{prefix}days:{student_id}"
