"""Moodle connector: student activity from ``{prefix}logstore_standard_log`` (PostgreSQL).

The log is read by increasing ``id`` in bounded keyset batches, so memory does not grow with
the table. Users and courses are mapped in the same query (LEFT JOINs), so a log row with no
usable student id is visible as such: it is dead-lettered as ``unmapped_user``, never guessed.

The position is a checkpoint row in LEAP's own ``leap.connector_checkpoints`` table, saved
only after :meth:`ActivityPublisher.publish` returned (the broker acknowledged the batch).
A crash in between re-sends that one batch with the same event ids, which the worker dedupes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.metrics import LAG_RECORDS, READ, CheckpointClock
from connectors.publisher import ActivityPublisher, Rejected
from schemas.ids import is_valid_student_id

__all__ = ["METRICS_CONNECTOR", "Checkpoints", "MoodleConfig", "MoodlePoller", "MoodleSummary"]

#: The ``connector`` label of this connector's leap_connector_* metrics.
METRICS_CONNECTOR = "moodle"

UserField = Literal["idnumber", "username"]


class MoodleConfig(BaseSettings):
    """The connector's knobs, from ``LEAP_MOODLE_*`` (CLI options override them)."""

    model_config = SettingsConfigDict(env_prefix="LEAP_MOODLE_", frozen=True, extra="ignore")

    dsn: str = Field(
        "postgresql:///moodle?host=/var/run/postgresql",
        description="Moodle's PostgreSQL database (read-only access suffices).",
    )
    checkpoint_dsn: str | None = Field(
        None,
        description="Where the leap.connector_checkpoints table lives; unset: "
        "LEAP_POSTGRES_DSN, else Moodle's own dsn (trial installs only).",
    )
    prefix: str = Field("mdl_", description="Moodle's table prefix ($CFG->prefix).")
    site: str = Field("moodle", description="Names this Moodle in event ids and the checkpoint.")
    batch_size: int = Field(5000, ge=1, description="Log rows per query and per publish.")
    user_field: UserField = Field(
        "idnumber", description="Column of {prefix}user holding the institutional student id."
    )
    poll_interval: float = Field(10.0, gt=0, description="Seconds between polls (follow mode).")
    edulevels: tuple[int, ...] = Field(
        (2,), description="Moodle edulevels kept: 2 = participating (a student's own work)."
    )
    excluded_origins: tuple[str, ...] = Field(
        ("cli", "restore"),
        description="Origins dropped: cron/CLI scripts and course restores are not students. "
        "'ws' is kept: it is the Moodle mobile app.",
    )

    @field_validator("prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        # The prefix is spliced into SQL (identifiers cannot be bind parameters).
        if not re.fullmatch(r"[a-z0-9_]{0,20}", value):
            raise ValueError("prefix must be lower-case letters, digits and '_'")
        return value

    @property
    def connector(self) -> str:
        return f"moodle:{self.site}"


@dataclass
class MoodleSummary:
    read: int = 0
    published: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    position: int = 0


class Checkpoints:
    """Connector positions in ``leap.connector_checkpoints``; the table is created if missing."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def ensure(self) -> None:
        await self.connection.execute(
            """
            CREATE SCHEMA IF NOT EXISTS leap;
            CREATE TABLE IF NOT EXISTS leap.connector_checkpoints (
                connector text PRIMARY KEY,
                position bigint NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )

    async def load(self, connector: str) -> int:
        position = await self.connection.fetchval(
            "SELECT position FROM leap.connector_checkpoints WHERE connector = $1", connector
        )
        return int(position or 0)

    async def save(self, connector: str, position: int) -> None:
        await self.connection.execute(
            """
            INSERT INTO leap.connector_checkpoints (connector, position, updated_at)
            VALUES ($1, $2, now())
            ON CONFLICT (connector) DO UPDATE SET position = $2, updated_at = now()
            """,
            connector,
            position,
        )


def batch_query(config: MoodleConfig) -> str:
    """Student engagement rows with ``$1 < id <= $2``, mapped to student and course, by id."""
    p = config.prefix
    return f"""
        SELECT l.id, l.eventname, l.component, l.action, l.target, l.crud, l.timecreated,
               l.userid, u.{config.user_field} AS student_id, c.shortname AS course_id
        FROM {p}logstore_standard_log l
        LEFT JOIN {p}user u ON u.id = l.userid AND u.deleted = 0
        LEFT JOIN {p}course c ON c.id = l.courseid AND c.format <> 'site'
        WHERE l.id > $1 AND l.id <= $2
          AND l.edulevel = ANY($3::smallint[])
          AND l.realuserid IS NULL
          AND l.userid > 0
          AND u.username IS DISTINCT FROM 'guest'
          AND l.anonymous = 0
          AND (l.origin IS NULL OR NOT l.origin = ANY($4::text[]))
        ORDER BY l.id
        LIMIT $5
    """  # noqa: S608 - prefix is validated, user_field is a Literal; values are parameters


class MoodlePoller:
    """Publishes Moodle log rows past the checkpoint, one acknowledged batch at a time."""

    def __init__(
        self,
        config: MoodleConfig,
        source: asyncpg.Connection,
        checkpoints: Checkpoints,
        publisher: ActivityPublisher,
    ) -> None:
        self.config = config
        self.source = source
        self.checkpoints = checkpoints
        self.publisher = publisher
        self.summary = MoodleSummary()
        self._query = batch_query(config)
        self._max_seen = 0
        self._checkpoint_clock = CheckpointClock(METRICS_CONNECTOR)

    async def max_id(self) -> int:
        table = f"{self.config.prefix}logstore_standard_log"
        query = f"SELECT coalesce(max(id), 0) FROM {table}"  # noqa: S608 - validated prefix
        found = int(await self.source.fetchval(query))
        self._max_seen = max(self._max_seen, found)
        return found

    async def run_once(
        self, on_batch: Callable[[int, int, int], None] | None = None
    ) -> MoodleSummary:
        """Catch up to the log's current max id, then stop (tests, backfills).

        ``on_batch(start, position, upper)`` is called after every checkpointed batch."""
        await self.checkpoints.ensure()
        start = await self.checkpoints.load(self.config.connector)
        upper = await self.max_id()
        await self._catch_up(start, upper, on_batch)
        return self.summary

    async def follow(self, stop: asyncio.Event) -> MoodleSummary:
        """Poll every ``poll_interval`` seconds until ``stop`` is set.

        Each poll reads only up to the max id seen by the *previous* poll: ids are taken
        when a row is inserted but become visible at commit, so a row whose transaction is
        still open would otherwise be skipped for good behind a higher committed id."""
        await self.checkpoints.ensure()
        position = await self.checkpoints.load(self.config.connector)
        settled = await self.max_id()
        while not stop.is_set():
            seen = await self.max_id()
            position = await self._catch_up(position, settled, None)
            settled = seen
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.poll_interval)
        return self.summary

    async def _catch_up(
        self, position: int, upper: int, on_batch: Callable[[int, int, int], None] | None
    ) -> int:
        start = position
        config = self.config
        while position < upper:
            rows = await self.source.fetch(
                self._query,
                position,
                upper,
                list(config.edulevels),
                list(config.excluded_origins),
                config.batch_size,
            )
            items = [self._item(row) for row in rows]
            self.summary.read += len(rows)
            READ.labels(METRICS_CONNECTOR).inc(len(rows))
            self.summary.published += await self.publisher.publish(items)
            # A short batch means nothing else up to ``upper`` matches: skip filtered rows too.
            position = rows[-1]["id"] if len(rows) == config.batch_size else upper
            await self.checkpoints.save(config.connector, position)
            self._checkpoint_clock.written()
            self.summary.position = position
            self._report_lag(position)
            if on_batch is not None:
                on_batch(start, position, upper)
        self.summary.position = position
        self._report_lag(position)
        return position

    def _report_lag(self, position: int) -> None:
        """Log ids not yet read: the newest max id seen minus the checkpoint. (The
        checkpoint age keeps growing while Moodle is idle: alert on it with lag > 0.)"""
        LAG_RECORDS.labels(METRICS_CONNECTOR).set(max(0, self._max_seen - position))

    def _item(self, row: Mapping[str, Any]) -> dict[str, Any] | Rejected:
        origin = f"{self.config.connector}:{row['id']}"
        student_id = row["student_id"]
        if not student_id or not is_valid_student_id(student_id):
            self.summary.rejected["unmapped_user"] += 1
            raw = {"site": self.config.site, "log_id": row["id"], "userid": row["userid"]}
            return Rejected(
                origin,
                json.dumps(raw).encode(),
                "unmapped_user",
                f"Moodle user {row['userid']} has no valid {self.config.user_field}",
            )
        return {
            "event_id": origin,
            "student_id": student_id,
            "source": "moodle",
            "action": row["action"],  # NOT NULL in Moodle: viewed, submitted, created...
            "occurred_at": datetime.fromtimestamp(row["timecreated"], UTC),
            "quantity": 1.0,
            "course_id": row["course_id"],
            "received_at": datetime.now(UTC),
            "attributes": {
                key: row[key] or "" for key in ("eventname", "component", "target", "crud")
            },
        }
