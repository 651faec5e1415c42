"""Stage 2 of a day boundary: band a cohort once every partition has reported.

Reports arrive keyed by cohort, so one worker sees all of a cohort's reports for a
day. It keeps them until the set is complete, then bands the whole cohort against its
reference (the same ``leap.scoring.score_cohort`` that ``leap replay`` calls), writes
each student's state to Redis and publishes an ``IndicatorChange`` when the
indicator changed (or is the student's first).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from faust.types import TableT, TopicT

from leap.reference import Student
from leap.scoring import INDICATORS as LEVELS
from leap.scoring import LABELS, Policy, score_cohort
from schemas.codec import AvroCodec
from streams.metrics import INDICATOR_CHANGES, INDICATORS
from streams.redis_sink import RedisSink
from streams.table_batch import TableBatch

__all__ = ["CohortBanding"]

log = logging.getLogger(__name__)

#: Completed rounds are remembered this long, so a re-delivered report is ignored.
ROUND_MEMORY = timedelta(days=62)


class CohortBanding:
    def __init__(
        self,
        policy: Policy,
        students: Mapping[str, Student],
        rounds: TableT,
        indicators: TableT,
        changes_topic: TopicT,
        change_codec: AvroCodec,
        sink: RedisSink,
    ) -> None:
        self.policy = policy
        self.students = students
        self.rounds = rounds
        self.indicators = indicators
        self.changes_topic = changes_topic
        self.change_codec = change_codec
        self.sink = sink

    async def on_report(self, report: Mapping[str, Any], partition: int) -> None:
        """Keep one partition's report (read from ``partition`` of the cohort-scores
        topic); band the cohort when the last one arrives."""
        cohort, as_of = report["cohort"], date.fromisoformat(report["as_of"])
        key = f"{cohort}|{as_of.isoformat()}"
        state = self.rounds.get(key) or {}
        if state.get("done"):
            return
        parts = dict(state.get("parts", {}))
        parts[str(report["partition"])] = report["scores"]
        if len(parts) < report["partitions"]:
            self.rounds[key] = {"parts": parts}
            return
        self.rounds[key] = {"done": True}
        self.rounds.pop(f"{cohort}|{(as_of - ROUND_MEMORY).isoformat()}", None)
        scores = {sid: entry for part in parts.values() for sid, entry in part.items()}
        await self._band(as_of, scores, partition)

    async def _band(self, as_of: date, scores: Mapping[str, list[float]], partition: int) -> None:
        result = score_cohort({sid: entry[0] for sid, entry in scores.items()}, self.policy)
        now = datetime.now(UTC)
        states: dict[str, dict[str, str]] = {}
        changes: list[dict[str, Any]] = []
        writes = TableBatch(self.indicators)
        for sid, (score, window) in sorted(scores.items()):
            previous = self.indicators.get(sid)
            if previous and previous["as_of"] > as_of.isoformat():
                continue  # a newer day already stands for this student
            student = self.students.get(sid)
            if student is None:
                continue  # removed from the reference data since its partition reported
            indicator = result.indicators[sid]
            states[sid] = {
                "student_id": sid,
                "indicator": indicator,
                "label": LABELS[indicator],
                "score": repr(score),
                "reference_score": repr(result.reference_score),
                "as_of": as_of.isoformat(),
                "window_days": str(int(window)),
                "policy_version": self.policy.version,
                "course": student.course,
                "year": str(student.year),
                "updated_at": now.isoformat(),
            }
            # The table holds the whole Redis state, so Redis can be rebuilt from it.
            writes.set(
                sid,
                {"indicator": indicator, "as_of": as_of.isoformat(), "state": states[sid]},
                partition,
            )
            if previous is None or previous["indicator"] != indicator:
                changes.append(
                    {
                        "student_id": sid,
                        "as_of": as_of,
                        "previous_indicator": previous["indicator"] if previous else None,
                        "indicator": indicator,
                        "score": score,
                        "reference_score": result.reference_score,
                        "window_days": int(window),
                        "policy_version": self.policy.version,
                        "reason": "day_close",
                        "course": student.course,
                        "year": student.year,
                        "contact_allowed": True,
                        "emitted_at": now,
                    }
                )
        await writes.commit()
        await self.sink.write_indicators(states)
        for change in changes:
            await self.changes_topic.send(
                key=change["student_id"].encode(), value=self.change_codec.encode(change)
            )
        INDICATOR_CHANGES.labels("day_close").inc(len(changes))
        self._report_distribution(states)
        log.info("banded %d students as of %s: %d changes", len(states), as_of, len(changes))

    @staticmethod
    def _report_distribution(states: Mapping[str, Mapping[str, str]]) -> None:
        """Set each banded cohort's five gauges (a cohort is one course + year)."""
        counts: dict[tuple[str, str], dict[str, int]] = {}
        for state in states.values():
            cohort = counts.setdefault((state["course"], state["year"]), dict.fromkeys(LEVELS, 0))
            cohort[state["indicator"]] += 1
        for (course, year), by_level in counts.items():
            for level, count in by_level.items():
                INDICATORS.labels(course, year, level).set(count)
