"""The worker's Prometheus metrics (bounded labels only: never a student id)."""

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ALERTS",
    "CONSUMER_LAG",
    "DAYS_CLOSED",
    "DAY_CLOSE_SECONDS",
    "DEAD_LETTERS",
    "EVENTS",
    "EVENT_LAG_SECONDS",
    "HISTORY_ERRORS",
    "HISTORY_PENDING_ROWS",
    "HISTORY_WRITE_SECONDS",
    "INDICATORS",
    "INDICATOR_CHANGES",
    "LAST_CLOSED_DAY",
    "OFFSET_REWINDS",
    "REDIS_ERRORS",
    "REDIS_PENDING_WRITES",
    "REDIS_WRITE_SECONDS",
    "STUDENTS_SCORED",
    "TABLE_RECOVERY_SECONDS",
]

EVENTS = Counter(
    "leap_worker_events_total",
    "Activity events consumed, by source and outcome (counted, duplicate, late, too_late).",
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
ALERTS = Counter(
    "leap_worker_alerts_total", "Engagement alerts published, by kind and state.", ["kind", "state"]
)
HISTORY_PENDING_ROWS = Gauge(
    "leap_worker_history_pending_rows",
    "Indicator history rows waiting to be written to PostgreSQL (grows while it is down).",
)
HISTORY_ERRORS = Counter(
    "leap_worker_history_errors_total",
    "Failed history writes: unavailable (retried) or rejected (batch dropped).",
    ["kind"],
)
HISTORY_WRITE_SECONDS = Histogram(
    "leap_worker_history_write_seconds",
    "Time of each history upsert statement.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OFFSET_REWINDS = Counter(
    "leap_worker_offset_rewinds_total",
    "Times an agent found records skipped by the consumer and sent it back to read them.",
    ["agent"],
)
INDICATOR_CHANGES = Counter(
    "leap_worker_indicator_changes_total", "IndicatorChange records published.", ["reason"]
)
REDIS_ERRORS = Counter(
    "leap_worker_redis_errors_total", "Redis writes that failed and were retried."
)

_HOUR, _DAY = 3600, 86400
#: One second to one week: live feeds arrive in seconds, nightly exports hours late.
_LAG_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, _HOUR, 3 * _HOUR, 6 * _HOUR)
EVENT_LAG_SECONDS = Histogram(
    "leap_worker_event_lag_seconds",
    "Now minus occurred_at of each counted event, when the worker consumed it.",
    buckets=(*_LAG_BUCKETS, 12 * _HOUR, _DAY, 2 * _DAY, 3 * _DAY, 7 * _DAY),
)
CONSUMER_LAG = Gauge(
    "leap_worker_consumer_lag_records",
    "End offset minus committed offset of each leap.activity partition assigned here.",
    ["partition"],
)
STUDENTS_SCORED = Counter(
    "leap_worker_students_scored_total", "Students scored at day closes (one per partition-day)."
)
LAST_CLOSED_DAY = Gauge(
    "leap_worker_last_closed_day_timestamp_seconds",
    "Unix time of the end (local midnight) of the last day closed on each partition.",
    ["partition"],
)
INDICATORS = Gauge(
    "leap_worker_indicators",
    "Students per indicator in each cohort, as of the cohort's last banding.",
    ["course", "year", "indicator"],
)
REDIS_WRITE_SECONDS = Histogram(
    "leap_worker_redis_write_seconds",
    "Time of each Redis write attempt (one chunk of up to 500 hashes, one script call).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
#: Why: during a Redis outage the worker keeps consuming and queues its writes (coalesced
#: per hash field); a backlog that grows, or does not drain, means the API is serving older
#: state than the tables hold, which leap_worker_redis_errors_total alone does not show.
REDIS_PENDING_WRITES = Gauge(
    "leap_worker_redis_pending_writes",
    "Redis hash fields written (or deleted) by the worker but not yet acknowledged by Redis.",
)
TABLE_RECOVERY_SECONDS = Gauge(
    "leap_worker_table_recovery_seconds",
    "How long the last table recovery took, from partition assignment to recovery complete.",
)
