"""No-engagement alerts at a day's close: the rules of ``leap.alerts`` over the day tables.

Alert state lives in a table keyed by student (on the student's partition), so an alert is
raised once and cleared once, whichever worker owns the partition, and survives restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from faust.types import TableT, TopicT

from leap.alerts import inactive_days, review_alert
from leap.contact import ContactPreferences
from leap.reference import Student
from leap.roster import Roster
from leap.scoring import daily_engagement
from schemas.codec import AvroCodec
from streams.batch_produce import send_by_key
from streams.day_record import day_sources, totals_key
from streams.metrics import ALERTS
from streams.table_batch import TableBatch, store_reader

__all__ = ["NoEngagementAlerts"]


class NoEngagementAlerts:
    def __init__(
        self,
        roster: Roster,
        preferences: ContactPreferences,
        daily_totals: TableT,
        alerts: TableT,
        topic: TopicT,
        codec: AvroCodec,
    ) -> None:
        self.roster = roster
        self.preferences = preferences
        self.daily_totals = daily_totals
        self.alerts = alerts
        self.topic = topic
        self.codec = codec

    async def review(
        self,
        partition: int,
        students: Iterable[Student],
        as_of: date,
        history_starts: date,
        kept: Callable[[str, date], float | None],
    ) -> None:
        """Raise or clear each student's alert as of ``as_of`` (a closed day). ``kept``
        gives a student's engagement on a day where the day closer kept it (None: read
        the day record)."""
        institution = self.roster.institution
        threshold = institution.no_engagement_days
        holiday = institution.holiday_on(as_of) is not None

        def is_holiday(day: date) -> bool:
            return institution.holiday_on(day) is not None

        now = datetime.now(UTC)
        state_of = store_reader(self.alerts)
        writes = TableBatch(self.alerts)
        out: list[dict[str, Any]] = []
        for student in students:
            sid = student.student_id
            raised = bool((state_of(sid) or {}).get("raised"))
            inactive = inactive_days(
                partial(self._engagement, kept, sid),
                as_of,
                is_holiday,
                history_starts,
                threshold,
            )
            action = review_alert(
                raised, inactive, threshold, self.preferences.allows(sid), holiday
            )
            if action is None:
                continue
            state = "raised" if action == "raise" else "cleared"
            writes.set(sid, {"raised": as_of.isoformat()} if action == "raise" else {}, partition)
            out.append(
                {
                    "student_id": sid,
                    "kind": "no_engagement",
                    "state": state,
                    "as_of": as_of,
                    "inactive_days": inactive if action == "raise" else 0,
                    "course": student.course,
                    "year": student.year,
                    "emitted_at": now,
                }
            )
        # Published and acknowledged before the state says so: a crash in between publishes
        # again on redelivery (at least once) rather than never.
        encode = self.codec.encode
        for ack in await send_by_key(
            self.topic.app, self.topic.get_topic_name(), [(a["student_id"], encode(a)) for a in out]
        ):
            await ack
        await writes.commit()
        for alert in out:
            ALERTS.labels("no_engagement", alert["state"]).inc()

    def _engagement(
        self, kept: Callable[[str, date], float | None], student_id: str, day: date
    ) -> float:
        engagement = kept(student_id, day)
        if engagement is not None:
            return engagement
        value = self.daily_totals.get(totals_key(student_id, day))
        return daily_engagement(day_sources(value), self.roster.policy) if value else 0.0
