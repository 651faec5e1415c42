"""The per-(student, local date) record the stream keeps, and the event fingerprints in it."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leap.scoring import SOURCES
from streams.day_record import (
    DayRecord,
    day_fingerprints,
    day_sources,
    event_fingerprint,
    totals_key,
)

sources_st = st.dictionaries(st.sampled_from(SOURCES), st.integers(0, 10**12))
fingerprints_st = st.sets(st.binary(min_size=6, max_size=6).map(bytes.hex), max_size=30)
records_st = st.builds(DayRecord, sources_st, fingerprints_st)


def through_changelog(value: Any) -> Any:
    """What a recovering worker's table holds: the value after the JSON serializer."""
    return json.loads(json.dumps(value))


def old_layout(record: DayRecord) -> dict[str, Any]:
    """How day records were stored before the compact layout (still in changelogs)."""
    return {"s": dict(record.sources), "ids": sorted(record.counted)}


@given(record=records_st)
def test_a_day_record_survives_the_table_as_json(record: DayRecord) -> None:
    assert DayRecord.from_table(through_changelog(record.to_table())) == record


@given(record=records_st)
def test_a_stored_record_is_read_without_building_a_day_record(record: DayRecord) -> None:
    stored = through_changelog(record.to_table())
    assert day_sources(stored) == record.sources
    assert day_fingerprints(stored) == sorted(record.counted)


@given(record=records_st)
def test_records_in_the_old_layout_are_still_read(record: DayRecord) -> None:
    stored = through_changelog(old_layout(record))
    assert DayRecord.from_table(stored) == record
    assert day_sources(stored) == record.sources
    assert day_fingerprints(stored) == sorted(record.counted)


@given(record=records_st)
def test_an_old_record_rewritten_reads_the_same(record: DayRecord) -> None:
    rewritten = DayRecord.from_table(through_changelog(old_layout(record))).to_table()
    assert DayRecord.from_table(through_changelog(rewritten)) == record


@pytest.mark.parametrize("layout", [DayRecord.to_table, old_layout])
def test_a_counted_event_is_a_duplicate_after_the_changelog(layout: Any) -> None:
    record = DayRecord()
    for n in range(5):
        record.counted.add(event_fingerprint(f"moodle:S1000001:2026-10-25:{n}"))
        record.sources["moodle"] = record.sources.get("moodle", 0) + 1_000
    recovered = DayRecord.from_table(through_changelog(layout(record)))
    assert event_fingerprint("moodle:S1000001:2026-10-25:3") in recovered.counted
    assert event_fingerprint("moodle:S1000001:2026-10-25:5") not in recovered.counted


def test_the_stored_layout_is_stable_across_releases() -> None:
    # Changelogs outlive releases: a running deployment recovers its tables from them.
    record = DayRecord({"attendance": 10_000, "moodle": 1_250}, {"a120d0ad50f1", "433911c6eb0d"})
    assert record.to_table() == "1|1250,,,,10000,|433911c6eb0da120d0ad50f1"
    assert DayRecord().to_table() == "1|,,,,,|"


def test_sources_keep_their_stored_positions() -> None:
    # Stored records name a source by its position in SOURCES: append, never reorder.
    assert SOURCES[:6] == (
        "moodle",
        "computer_login",
        "submission",
        "lecture_capture",
        "attendance",
        "library",
    )


def test_an_absent_table_value_is_an_empty_record() -> None:
    for absent in (None, {}, ""):
        assert DayRecord.from_table(absent) == DayRecord()
        assert day_sources(absent) == {}
        assert day_fingerprints(absent) == []


@pytest.mark.parametrize(
    "stored",
    ["2|1000,,,,,|", "1000,,,,,|433911c6eb0d", "1|1000,,,,,|433911c6eb0", "1|1000,,,,,", "junk"],
)
def test_a_value_in_no_known_layout_is_refused(stored: str) -> None:
    with pytest.raises(ValueError):
        DayRecord.from_table(stored)


def test_a_fingerprint_that_would_not_unpack_is_refused() -> None:
    with pytest.raises(ValueError):
        DayRecord({"moodle": 1_000}, {"433911c6eb0d", "abc"}).to_table()


def test_a_source_without_a_stored_position_is_refused() -> None:
    with pytest.raises(ValueError, match="gym"):
        DayRecord({"moodle": 1_000, "gym": 1_000}, {"433911c6eb0d"}).to_table()


def test_a_record_from_before_a_source_was_added_still_reads() -> None:
    # SOURCES grows at its end; records written before have fewer fields.
    assert day_sources("1|1250,,,,10000|433911c6eb0d") == {"moodle": 1_250, "attendance": 10_000}


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
