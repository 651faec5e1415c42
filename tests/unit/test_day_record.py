"""The per-(student, local date) record the stream keeps, and the event fingerprints in it."""

from __future__ import annotations

import json
import re
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from leap.scoring import SOURCES
from streams.day_record import DayRecord, event_fingerprint, totals_key

sources_st = st.dictionaries(st.sampled_from(SOURCES), st.integers(0, 10**9))
fingerprints_st = st.sets(st.binary(min_size=6, max_size=6).map(bytes.hex), max_size=30)


@given(sources=sources_st, counted=fingerprints_st)
def test_a_day_record_survives_the_table_as_json(
    sources: dict[str, int], counted: set[str]
) -> None:
    record = DayRecord(sources, counted)
    stored = json.loads(json.dumps(record.to_table()))
    assert DayRecord.from_table(stored) == record


@given(counted=fingerprints_st)
def test_counted_ids_are_stored_sorted(counted: set[str]) -> None:
    assert DayRecord({}, counted).to_table()["ids"] == sorted(counted)


def test_an_absent_table_value_is_an_empty_record() -> None:
    assert DayRecord.from_table(None) == DayRecord()
    assert DayRecord.from_table({}) == DayRecord()
    assert DayRecord().to_table() == {"s": {}, "ids": []}


def test_changing_a_record_read_from_the_table_leaves_the_table_value_alone() -> None:
    stored = {"s": {"moodle": 1_000}, "ids": ["aaaaaaaaaaaa"]}
    record = DayRecord.from_table(stored)
    record.sources["moodle"] += 1_000
    record.counted.add("bbbbbbbbbbbb")
    assert stored == {"s": {"moodle": 1_000}, "ids": ["aaaaaaaaaaaa"]}


def test_totals_key_is_student_and_iso_date() -> None:
    assert totals_key("S1000001", date(2026, 10, 25)) == "S1000001|2026-10-25"


def test_event_fingerprint_is_stable_across_releases() -> None:
    # Stored in changelogs: a new value would let every re-read event count twice.
    assert event_fingerprint("synthetic:7:S1000000:2026-10-25:0") == "adcbeba68e62"


@given(event_id=st.text(min_size=1, max_size=200))
def test_event_fingerprint_is_deterministic_and_twelve_hex_chars(event_id: str) -> None:
    fingerprint = event_fingerprint(event_id)
    assert re.fullmatch(r"[0-9a-f]{12}", fingerprint)
    assert event_fingerprint(event_id) == fingerprint


@given(a=st.text(min_size=1, max_size=200), b=st.text(min_size=1, max_size=200))
def test_different_event_ids_get_different_fingerprints(a: str, b: str) -> None:
    if a != b:
        assert event_fingerprint(a) != event_fingerprint(b)


def test_a_student_days_worth_of_ids_never_collide() -> None:
    ids = [f"moodle:S1000001:2026-10-25:{n}" for n in range(20_000)]
    assert len({event_fingerprint(i) for i in ids}) == len(ids)
