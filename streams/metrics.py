"""The worker's Prometheus metrics (bounded labels only: never a student id)."""

from prometheus_client import Counter, Histogram

__all__ = [
    "DAYS_CLOSED",
    "DAY_CLOSE_SECONDS",
    "DEAD_LETTERS",
    "EVENTS",
    "INDICATOR_CHANGES",
    "REDIS_ERRORS",
]

EVENTS = Counter(
    "leap_worker_events_total",
    "Activity events consumed, by source and outcome (counted, duplicate, late).",
    ["source", "outcome"],
)
DEAD_LETTERS = Counter(
    "leap_worker_dead_letters_total", "Records sent to the dead-letter topic.", ["reason"]
)
DAYS_CLOSED = Counter("leap_worker_days_closed_total", "Partition-days closed.")
DAY_CLOSE_SECONDS = Histogram(
    "leap_worker_day_close_seconds",
    "Time to score one partition's students at a day boundary.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INDICATOR_CHANGES = Counter(
    "leap_worker_indicator_changes_total", "IndicatorChange records published.", ["reason"]
)
REDIS_ERRORS = Counter(
    "leap_worker_redis_errors_total", "Redis writes that failed and were retried."
)
