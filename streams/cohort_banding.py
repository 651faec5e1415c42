"""Stage 2 of a day boundary: band a cohort once every partition has reported.

Reports arrive keyed by cohort, so one worker sees all of a cohort's reports for a
day. It keeps them until the set is complete, then bands the whole cohort against its
reference (the same ``leap.scoring.score_cohort`` that ``leap replay`` calls), writes
each student's state to Redis and publishes an ``IndicatorChange`` when the
indicator changed (or is the student's first).

A round keeps its reports while late data may still revise it (the lateness horizon). A
late report merges its students' new scores into the round and bands the cohort again;
each student whose indicator *for that as-of date* changed gets an ``IndicatorChange``
with ``reason=late_data``, and Redis is updated where that date is the student's newest.

The ``cohort_rounds`` table holds, per round (cohort and as-of date), a small marker
``{"parts": [partitions reported], "done": bool}`` under ``cohort|as_of`` and each
partition's report under ``cohort|as_of|partition``: one changelog record per report. A
round kept whole in one value was rewritten with every report that arrived, and outgrew
Kafka's 1 MB record limit at ~9,000 students a cohort. A report is kept as the JSON text
of its lines, ``{student id: [score, window days, active days, units of each of
SOURCES]}`` (numbers only; the breakdown is rebuilt for history).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import orjson
from faust.types import TableT, TopicT

from leap.contact import ContactPreferences
from leap.db.history import HistoryRow
from leap.reference import Student
from leap.scoring import INDICATORS as LEVELS
from leap.scoring import LABELS, SOURCES, Policy, breakdown_of, score_cohort
from schemas.codec import AvroCodec
from streams.batch_produce import send_by_key
from streams.history_sink import HistorySink
from streams.indicator_record import indicator_standing, indicator_value
from streams.metrics import INDICATOR_CHANGES, INDICATORS
from streams.redis_sink import RedisSink
from streams.table_batch import TableBatch, store_reader

__all__ = ["CohortBanding"]

log = logging.getLogger(__name__)

#: Completed rounds are remembered this long, so a re-delivered report is ignored.
ROUND_MEMORY = timedelta(days=62)

#: student id -> [score, window days, active days, units of each of SOURCES]
Scores = Mapping[str, list[Any]]


class CohortBanding:
    def __init__(
        self,
        policy: Policy,
        roster: Mapping[str, Student],
        rounds: TableT,
        indicators: TableT,
        changes_topic: TopicT,
        change_codec: AvroCodec,
        sink: RedisSink,
        lateness_horizon_days: int,
        preferences: ContactPreferences,
        history: HistorySink | None,
    ) -> None:
        self.policy = policy
        self.roster = roster
        self.rounds = rounds
        self.indicators = indicators
        self.changes_topic = changes_topic
        self.change_codec = change_codec
        self.sink = sink
        self.preferences = preferences
        self.history = history
        # Rounds are written as one changelog batch per batch of reports (``commit``):
        # ``Table.__setitem__`` cost ~380 µs and a produce request a write.
        self._writes: TableBatch | None = None
        # Late events reach back at most this far behind the newest completed round.
        self.keep_reports = timedelta(days=lateness_horizon_days + 1)

    async def on_report(self, report: Mapping[str, Any], partition: int) -> None:
        """Keep one partition's report (read from ``partition`` of the cohort-scores
        topic); band the cohort when the last one arrives, again when late data revises it."""
        cohort, as_of = report["cohort"], date.fromisoformat(report["as_of"])
        key = self._round_key(cohort, as_of)
        state = self._state(key, partition)
        done = bool(state.get("done"))
        reported: list[str] = state.get("parts", [])
        part = str(report["partition"])
        scores = {sid: _kept(entry) for sid, entry in report["scores"].items()}
        if report.get("late"):
            if part not in reported:  # a round before this deployment's first, or long gone
                log.warning("late report for %s as of %s has no round to revise", cohort, as_of)
                return
            scores = {**self._part(key, part), **scores}
        elif done and not reported:
            return  # a re-delivered report for a round past the lateness horizon
        if not done:
            self._keep_part(key, part, scores, partition)
            reported = sorted({*reported, part})
            if len(reported) < report["partitions"]:
                self._round_writes().set(key, {"parts": reported}, partition)
                return
            await self._band(as_of, self._merged(key, reported), partition, before=None)
            # Only now: a crash before this is durable (``commit``) re-bands the round on
            # redelivery.
            self._round_writes().set(key, {"done": True, "parts": reported}, partition)
            self._forget_old_rounds(cohort, as_of, partition)
            return
        if scores == self._part(key, part):
            return  # a re-delivered report: nothing new
        before = self._merged(key, reported)
        await self._band(as_of, {**before, **scores}, partition, before=before)
        self._keep_part(key, part, scores, partition)

    async def commit(self) -> None:
        """Make the rounds written since the last commit durable (awaited): call it before
        the positions of the reports that wrote them."""
        if self._writes is not None:
            await self._writes.commit()

    def _round_writes(self) -> TableBatch:
        if self._writes is None:  # made at the first report: the table is set up by then
            self._writes = TableBatch(self.rounds)
        return self._writes

    @staticmethod
    def _round_key(cohort: str, as_of: date) -> str:
        return f"{cohort}|{as_of.isoformat()}"

    def _state(self, key: str, partition: int) -> dict[str, Any]:
        """A round's marker. A round kept whole in its marker (before each report had its
        own key) is split into report keys first, so its late data still revises it."""
        state = dict(self.rounds.get(key) or {})
        parts = state.get("parts")
        if isinstance(parts, dict):
            for part, scores in parts.items():
                self._keep_part(key, part, {sid: _kept(e) for sid, e in scores.items()}, partition)
            state["parts"] = sorted(parts)
            self._round_writes().set(key, state, partition)
        return state

    def _keep_part(self, key: str, part: str, scores: Scores, partition: int) -> None:
        """Keep a partition's report as JSON text: a round is read only when banded, and
        decoded lists took ten times the memory (~5 KB a student over the rounds kept)."""
        self._round_writes().set(f"{key}|{part}", orjson.dumps(scores).decode(), partition)

    def _part(self, key: str, part: str) -> dict[str, list[Any]]:
        text = self.rounds.get(f"{key}|{part}")
        return cast(dict[str, list[Any]], orjson.loads(text)) if text else {}

    def _merged(self, key: str, parts: Iterable[str]) -> dict[str, list[Any]]:
        """One round's scores from all its partitions' reports."""
        return {sid: entry for part in parts for sid, entry in self._part(key, part).items()}

    def _forget_old_rounds(self, cohort: str, as_of: date, partition: int) -> None:
        """Drop the reports of a round late data can no longer reach; later, its marker."""
        self._forget(self._round_key(cohort, as_of - ROUND_MEMORY), partition)
        final = self._round_key(cohort, as_of - self.keep_reports)
        parts = (self.rounds.get(final) or {}).get("parts")
        if parts:
            for part in parts:
                self._forget(f"{final}|{part}", partition)
            self._round_writes().set(final, {"done": True}, partition)

    def _forget(self, key: str, partition: int) -> None:
        """A tombstone for ``key`` if it is there, as ``Table.pop`` sends."""
        if key in self.rounds:
            self._round_writes().delete(key, partition)

    async def _band(
        self, as_of: date, scores: Scores, partition: int, before: Scores | None
    ) -> None:
        """Band a cohort's scores as of ``as_of``. ``before`` is None at the day's close;
        on a revision it holds the scores that were banded before the late data."""
        result = score_cohort({sid: entry[0] for sid, entry in scores.items()}, self.policy)
        banded_before = (
            score_cohort({sid: entry[0] for sid, entry in before.items()}, self.policy)
            if before is not None
            else None
        )
        reason = "day_close" if banded_before is None else "late_data"
        now = datetime.now(UTC)
        # The same for every student: formatted once (a cohort is thousands of students).
        day, updated_at = as_of.isoformat(), now.isoformat()
        reference, version = repr(result.reference_score), self.policy.version
        current_of = store_reader(self.indicators)
        states: dict[str, dict[str, str]] = {}
        changes: list[dict[str, Any]] = []
        writes = TableBatch(self.indicators)
        history: list[HistoryRow] = []
        for sid, (score, window, *breakdown) in sorted(scores.items()):
            student = self.roster.get(sid)
            if student is None:
                continue  # out of scope or removed since its partition reported
            stored = current_of(sid)
            current = indicator_standing(stored) if stored is not None else None
            is_newest = current is None or current.as_of <= day
            indicator = result.indicators[sid]
            if banded_before is None:
                if not is_newest:
                    continue  # a newer day already stands for this student
                previous = current.indicator if current else None
            else:
                previous = banded_before.indicators.get(sid)
            if is_newest:
                states[sid] = {
                    "student_id": sid,
                    "indicator": indicator,
                    "label": LABELS[indicator],
                    "score": repr(score),
                    "reference_score": reference,
                    "as_of": day,
                    "window_days": str(int(window)),
                    "policy_version": version,
                    "course": student.course,
                    "year": str(student.year),
                    "updated_at": updated_at,
                }
                # The table holds the whole Redis state, so Redis can be rebuilt from it.
                writes.set(sid, indicator_value(states[sid]), partition)
            if self.history is not None:
                history.append(
                    HistoryRow(
                        student_id=sid,
                        as_of=as_of,
                        indicator=indicator,
                        score=score,
                        reference_score=result.reference_score,
                        window_days=int(window),
                        breakdown=_breakdown(breakdown),
                        policy_version=version,
                        course=student.course,
                        year=student.year,
                        contact_allowed=self.preferences.allows(sid),
                    )
                )
            if previous != indicator:
                changes.append(
                    {
                        "student_id": sid,
                        "as_of": as_of,
                        "previous_indicator": previous,
                        "indicator": indicator,
                        "score": score,
                        "reference_score": result.reference_score,
                        "window_days": int(window),
                        "policy_version": version,
                        "reason": reason,
                        "course": student.course,
                        "year": student.year,
                        "contact_allowed": self.preferences.allows(sid),
                        "emitted_at": now,
                    }
                )
        # Changes are acknowledged before the table records them as the student's newest: a
        # crash in between re-sends them on redelivery (at least once), never loses them.
        encode = self.change_codec.encode
        for ack in await send_by_key(
            self.changes_topic.app,
            self.changes_topic.get_topic_name(),
            [(change["student_id"], encode(change)) for change in changes],
        ):
            await ack
        await writes.commit()
        await self.sink.write_indicators(states)
        if self.history is not None:
            self.history.add(history)
        INDICATOR_CHANGES.labels(reason).inc(len(changes))
        if len(states) == len(scores):  # the whole cohort stands as of this day
            self._report_distribution(states)
            await self.sink.write_cohort(
                _distribution(states.values(), as_of, result.reference_score, self.policy.version)
            )
        log.info(
            "banded %d students as of %s (%s): %d changes", len(scores), as_of, reason, len(changes)
        )

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


def _distribution(
    states: Iterable[Mapping[str, str]], as_of: date, reference_score: float, policy_version: str
) -> tuple[str, str, dict[str, str]]:
    """A whole cohort's counts per level as of one day (``leap.state_keys`` layout)."""
    counts: dict[str, int] = dict.fromkeys(LEVELS, 0)
    course = year = ""
    for state in states:
        counts[state["indicator"]] += 1
        course, year = state["course"], state["year"]
    return (
        course,
        year,
        {
            "as_of": as_of.isoformat(),
            "reference_score": repr(reference_score),
            "policy_version": policy_version,
            "size": str(sum(counts.values())),
            **{level: str(n) for level, n in counts.items()},
        },
    )


def _kept(entry: list[Any]) -> list[Any]:
    """A report's line for a student (``streams.day_close``) as a round keeps it. Lines of
    reports sent before they were numbers only, ``[score, window days, breakdown]``, are
    converted."""
    if len(entry) != 3:
        return entry
    score, window, breakdown = entry
    units = breakdown["sources"]
    return [
        score,
        window,
        breakdown["active_days"],
        *(round(units.get(s, 0) * 1000) for s in SOURCES),
    ]


def _breakdown(kept: list[Any]) -> dict[str, Any]:
    """The breakdown (``leap.scoring.breakdown_of``) of a kept line's tail."""
    active_days, *units = kept
    return breakdown_of(dict(zip(SOURCES, units, strict=True)), active_days)
