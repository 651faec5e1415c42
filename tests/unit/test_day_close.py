"""The day closer's bookkeeping (``streams.day_close``), on a Faust app that never connects.

What it keeps between closes must not outlive its truth: windows kept for students are
dropped when partitions are revoked (another worker may amend their days meanwhile), and
day records past every use are dropped for the closing partition only (a tombstone each, on
its changelog partition), found with one pass over the table per cutoff date however many
partitions close.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, cast

import faust
import pytest

from leap.institution import Institution
from leap.policy import load_policy
from leap.reference import partition_for
from leap.roster import Roster
from leap.settings import Settings
from streams.day_close import DayCloser
from streams.day_record import DayRecord, totals_key
from streams.table_batch import DELETED, TableBatch

POLICY = load_policy()
DAY = date(2026, 10, 26)
STUDENTS = [f"S{1_000_000 + n}" for n in range(40)]


@pytest.fixture
def closer() -> DayCloser:
    app = faust.App(f"test-{id(object())}", store="memory://", topic_partitions=4)
    table = app.Table("daily_totals", partitions=4)
    table._verified_source_topics_for_partitions.add("leap.activity")  # type: ignore[attr-defined]
    settings = Settings(partitions=4)  # type: ignore[call-arg]
    roster = Roster(Institution(), POLICY, 4)
    none = cast(Any, None)
    return DayCloser(settings, POLICY, roster, table, none, none, none)


async def test_revoked_partitions_drop_the_windows_kept(closer: DayCloser) -> None:
    closer.windows.close(0, DAY, [("S1000001", 7)], lambda sid: {DAY: {"moodle": 4000}}.get)
    assert closer.windows.engagement_on(0, "S1000001", DAY) == 1.0
    await closer.daily_totals.app.on_partitions_revoked.send(set())
    assert closer.windows.engagement_on(0, "S1000001", DAY) is None


def test_old_day_records_are_dropped_for_the_closing_partition_only(closer: DayCloser) -> None:
    store = closer.daily_totals.data
    for sid in STUDENTS:
        for back in (0, 27, 28, 29):  # records are kept 28 days (21-day window + 7 late)
            store[totals_key(sid, DAY - timedelta(days=back))] = DayRecord({"moodle": 1}).to_table()
    before = DAY - timedelta(days=closer.keep_days)
    scans = 0
    keys = store.keys

    def counted_keys() -> Any:
        nonlocal scans
        scans += 1
        return keys()

    store.keys = counted_keys  # type: ignore[method-assign]
    oldest = f"|{(DAY - timedelta(days=29)).isoformat()}"
    for partition in range(4):
        purge = TableBatch(closer.daily_totals)
        closer._forget_day_records(partition, before, purge)
        left = {k for k in store if k.endswith(oldest)}
        assert {partition_for(k.split("|")[0], 4) for k in left} == set(range(partition + 1, 4))
        # one tombstone a record dropped, on the closing partition's changelog
        dropped = [sid for sid in STUDENTS if partition_for(sid, 4) == partition]
        assert purge.pending == {partition: [(f"{sid}{oldest}", DELETED) for sid in dropped]}
    assert scans == 1  # one pass over the table for the cutoff, not one a partition
    assert len(store) == 3 * len(STUDENTS)  # today, 27 and 28 days back are kept
