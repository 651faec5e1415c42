"""The Avro contracts and their codec: framing, fingerprints, validation, JSON import."""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from fastavro import schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import (
    ACTIVITY_EVENT,
    INDICATOR_CHANGE,
    REASONS,
    InvalidRecord,
    activity_codec,
    activity_from_json,
    activity_to_json,
    indicator_change_codec,
)
from schemas.ids import STUDENT_ID_PATTERN

# --- CRC-64-AVRO, written out from the Avro specification as an independent oracle ---

_EMPTY = 0xC15D213AA4D7A795
_TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (_EMPTY & -(_fp & 1))
    _TABLE.append(_fp)


def rabin(canonical: str) -> int:
    fp = _EMPTY
    for byte in canonical.encode():
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


# From share/test/data/schema-tests.txt in apache/avro (signed 64-bit, as Java prints them).
SPEC_VECTORS = [
    ('"null"', 7195948357588979594),
    ('"boolean"', -6970731678124411036),
    ('"int"', 8247732601305521295),
    ('"string"', -8142146995180207161),
    ('{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}', 5916914534497305771),
    (
        '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar",'
        ' "symbols":["A1", "A2"]}',
        -4448647247586288245,
    ),
    (
        '{"name":"PigValue","type":"record",'
        ' "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
        -1759257747318642341,
    ),
]


@pytest.mark.parametrize(("schema_json", "expected"), SPEC_VECTORS)
def test_crc64_avro_matches_spec_vectors(schema_json: str, expected: int) -> None:
    canonical = to_parsing_canonical_form(json.loads(schema_json))
    expected_bytes = struct.pack("<q", expected)  # single-object framing is little-endian
    assert rabin(canonical) == expected & (2**64 - 1)
    assert bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")) == expected_bytes


@pytest.mark.parametrize("contract", [ACTIVITY_EVENT, INDICATOR_CHANGE])
def test_contract_fingerprint_is_crc64_of_canonical_form(contract: Any) -> None:
    canonical = to_parsing_canonical_form(contract.definition)
    assert "logicalType" not in canonical and "doc" not in canonical
    assert contract.fingerprint == rabin(canonical).to_bytes(8, "little")


@pytest.mark.parametrize("contract", [ACTIVITY_EVENT, INDICATOR_CHANGE])
def test_every_field_is_documented(contract: Any) -> None:
    assert all(field.get("doc") for field in contract.definition["fields"])


# --- round trips ---


def activity(**overrides: Any) -> dict[str, Any]:
    record = {
        "event_id": "moodle:log:981273",
        "student_id": "ABCDE12345",
        "source": "moodle",
        "action": "view",
        "occurred_at": datetime(2024, 10, 1, 9, 30, 0, 123000, tzinfo=UTC),
        "quantity": 1.0,
        "course_id": "CS101",
        "received_at": datetime(2024, 10, 1, 9, 31, tzinfo=UTC),
        "attributes": {"module": "forum"},
    }
    record.update(overrides)
    return record


def indicator_change(**overrides: Any) -> dict[str, Any]:
    record = {
        "student_id": "ABCDE12345",
        "as_of": date(2024, 10, 1),
        "previous_indicator": "good",
        "indicator": "low",
        "score": 12.5,
        "reference_score": 40.0,
        "window_days": 14,
        "policy_version": "2024.1",
        "reason": "day_close",
        "course": "Computer Science",
        "year": 2,
        "contact_allowed": False,
        "emitted_at": datetime(2024, 10, 2, 2, 0, tzinfo=UTC),
    }
    record.update(overrides)
    return record


def test_activity_round_trip_single_object() -> None:
    codec = activity_codec()
    data = codec.encode(activity())
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == ACTIVITY_EVENT.fingerprint
    decoded = codec.decode(data)
    assert decoded == activity()
    assert decoded["occurred_at"].tzinfo is not None
    assert decoded["occurred_at"].utcoffset() == timedelta(0)


def test_indicator_change_round_trip_single_object() -> None:
    codec = indicator_change_codec()
    data = codec.encode(indicator_change())
    assert data[:10] == b"\xc3\x01" + INDICATOR_CHANGE.fingerprint
    assert codec.decode(data) == indicator_change()


def test_defaults_are_filled_on_decode() -> None:
    codec = activity_codec()
    minimal = {key: activity()[key] for key in ("event_id", "student_id", "source", "action")}
    minimal["occurred_at"] = activity()["occurred_at"]
    decoded = codec.decode(codec.encode(minimal))
    assert decoded["quantity"] == 1.0
    assert decoded["course_id"] is None and decoded["received_at"] is None
    assert decoded["attributes"] == {}

    change = indicator_change(previous_indicator=None)
    del change["contact_allowed"]
    decoded_change = indicator_change_codec().decode(indicator_change_codec().encode(change))
    assert decoded_change["contact_allowed"] is True
    assert decoded_change["previous_indicator"] is None


# --- every reason, from real bad input ---


def _raw_activity_bytes(record: dict[str, Any]) -> bytes:
    """Bytes a careless producer could send: valid Avro, never run through our checks."""
    body = io.BytesIO()
    schemaless_writer(body, ACTIVITY_EVENT.parsed, record)
    return b"\xc3\x01" + ACTIVITY_EVENT.fingerprint + body.getvalue()


GOOD = activity_codec().encode(activity())

DECODE_CASES: list[tuple[str, bytes, str]] = [
    ("garbage", b"this is not avro at all", "not_avro"),
    ("empty", b"", "not_avro"),
    ("wrong magic", b"\xc3\x02" + GOOD[2:], "not_avro"),
    ("truncated header", GOOD[:6], "not_avro"),
    ("truncated body", GOOD[:-5], "not_avro"),
    ("trailing bytes", GOOD + b"\x00", "not_avro"),
    ("unknown fingerprint", b"\xc3\x01" + bytes(8) + GOOD[10:], "unknown_schema"),
    ("other contract", indicator_change_codec().encode(indicator_change()), "unknown_schema"),
    ("registry framing, no registry", b"\x00\x00\x00\x00\x07" + GOOD[10:], "unknown_schema"),
    ("empty student", _raw_activity_bytes(activity(student_id="")), "missing_student"),
    ("bad student id", _raw_activity_bytes(activity(student_id="jo@uni.ac.uk")), "invalid_field"),
    ("negative quantity", _raw_activity_bytes(activity(quantity=-1.0)), "invalid_field"),
    ("nan quantity", _raw_activity_bytes(activity(quantity=math.nan)), "invalid_field"),
    ("empty event id", _raw_activity_bytes(activity(event_id="")), "invalid_field"),
    ("long event id", _raw_activity_bytes(activity(event_id="e" * 201)), "invalid_field"),
]


@pytest.mark.parametrize(
    ("data", "reason"), [case[1:] for case in DECODE_CASES], ids=[c[0] for c in DECODE_CASES]
)
def test_decode_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        activity_codec().decode(data)
    assert caught.value.reason == reason
    assert str(caught.value)


def _without(field: str) -> dict[str, Any]:
    record = activity()
    del record[field]
    return record


ENCODE_CASES: list[tuple[str, Callable[[], dict[str, Any]], str]] = [
    ("missing action", lambda: _without("action"), "schema_invalid"),
    ("missing occurred_at", lambda: _without("occurred_at"), "schema_invalid"),
    ("unknown source", lambda: activity(source="twitter"), "schema_invalid"),
    ("quantity as text", lambda: activity(quantity="2"), "schema_invalid"),
    ("lone surrogate", lambda: activity(action="\ud800"), "schema_invalid"),
    ("missing student", lambda: _without("student_id"), "missing_student"),
    ("bad student id", lambda: activity(student_id="Jo Bloggs"), "invalid_field"),
    ("negative quantity", lambda: activity(quantity=-0.5), "invalid_field"),
    ("infinite quantity", lambda: activity(quantity=math.inf), "invalid_field"),
    ("naive occurred_at", lambda: activity(occurred_at=datetime(2024, 10, 1)), "invalid_field"),
    ("oversized", lambda: activity(attributes={"blob": "x" * 500}), "oversized"),
]


@pytest.mark.parametrize(
    ("make", "reason"), [case[1:] for case in ENCODE_CASES], ids=[c[0] for c in ENCODE_CASES]
)
def test_encode_rejects(make: Callable[[], dict[str, Any]], reason: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        activity_codec(max_bytes=256).encode(make())
    assert caught.value.reason == reason


def test_decode_rejects_oversized_before_reading() -> None:
    with pytest.raises(InvalidRecord) as caught:
        activity_codec(max_bytes=len(GOOD) - 1).decode(GOOD)
    assert caught.value.reason == "oversized"


def test_every_reason_is_exercised() -> None:
    exercised = {case[2] for case in DECODE_CASES} | {case[2] for case in ENCODE_CASES}
    assert exercised == set(REASONS)


def test_indicator_change_rejects_naive_emitted_at() -> None:
    with pytest.raises(InvalidRecord) as caught:
        indicator_change_codec().encode(indicator_change(emitted_at=datetime(2024, 10, 2)))
    assert caught.value.reason == "invalid_field"


def test_validation_messages_do_not_echo_values() -> None:
    with pytest.raises(InvalidRecord) as caught:
        activity_codec().encode(activity(action=12345678, course_id=987654321))
    assert "12345678" not in str(caught.value) and "987654321" not in str(caught.value)
    assert "action" in str(caught.value)


# --- properties ---

_text = st.text(st.characters(codec="utf-8"), max_size=30)
_instants = st.datetimes(
    min_value=datetime(2, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
).map(lambda moment: moment.replace(microsecond=moment.microsecond // 1000 * 1000))

activities = st.fixed_dictionaries(
    {
        "event_id": st.text(st.characters(codec="utf-8"), min_size=1, max_size=200),
        "student_id": st.from_regex(STUDENT_ID_PATTERN, fullmatch=True),
        "source": st.sampled_from(ACTIVITY_EVENT.definition["fields"][2]["type"]["symbols"]),
        "action": _text,
        "occurred_at": _instants,
        "quantity": st.floats(min_value=0, allow_nan=False, allow_infinity=False),
        "course_id": st.none() | _text,
        "received_at": st.none() | _instants,
        "attributes": st.dictionaries(_text, _text, max_size=5),
    }
)


@settings(deadline=None)
@given(activities)
def test_any_valid_activity_round_trips_exactly(record: dict[str, Any]) -> None:
    codec = activity_codec()
    decoded = codec.decode(codec.encode(record))
    assert decoded == record
    assert all(
        moment.utcoffset() == timedelta(0)
        for moment in (decoded["occurred_at"], decoded["received_at"])
        if moment is not None
    )
    assert activity_from_json(activity_to_json(decoded)) == decoded


@settings(deadline=None)
@given(
    st.sampled_from([b"", b"\xc3\x01" + ACTIVITY_EVENT.fingerprint, b"\x00\x00\x00\x00\x01"]),
    st.binary(max_size=80),
)
def test_arbitrary_bytes_only_ever_raise_invalid_record(header: bytes, body: bytes) -> None:
    try:
        activity_codec().decode(header + body)
    except InvalidRecord as exc:
        assert exc.reason in REASONS


# --- JSON import ---


def json_activity(**overrides: Any) -> dict[str, Any]:
    obj = {
        "event_id": "lib:loan:1",
        "student_id": "ABCDE12345",
        "source": "library",
        "action": "loan",
        "occurred_at": "2024-10-01T09:30:00Z",
    }
    obj.update(overrides)
    return obj


@pytest.mark.parametrize(
    "stamp", ["2024-10-01T09:30:00Z", "2024-10-01T10:30:00+01:00", "2024-10-01T04:30:00-05:00"]
)
def test_from_json_accepts_z_and_offsets(stamp: str) -> None:
    record = activity_from_json(json_activity(occurred_at=stamp))
    assert record["occurred_at"] == datetime(2024, 10, 1, 9, 30, tzinfo=UTC)
    assert record["occurred_at"].tzinfo is UTC
    assert record["quantity"] == 1.0 and record["attributes"] == {}
    assert activity_codec().decode(activity_codec().encode(record)) == record


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"occurred_at": "2024-10-01T09:30:00"}, "invalid_field"),
        ({"occurred_at": "2024-10-01"}, "invalid_field"),
        ({"occurred_at": "yesterday"}, "invalid_field"),
        ({"occurred_at": 1727775000000}, "invalid_field"),
        ({"received_at": "2024-10-01T09:30:00"}, "invalid_field"),
        ({"quantity": "1"}, "invalid_field"),
        ({"quantity": True}, "invalid_field"),
        ({"quantity": -3}, "invalid_field"),
        ({"student_id": None}, "missing_student"),
        ({"occurred_at": None}, "schema_invalid"),
        ({"quantiy": 2}, "schema_invalid"),
    ],
)
def test_from_json_rejects(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        activity_from_json(json_activity(**overrides))
    assert caught.value.reason == reason


def test_from_json_rejects_non_objects() -> None:
    with pytest.raises(InvalidRecord) as caught:
        activity_from_json(["not", "an", "object"])
    assert caught.value.reason == "schema_invalid"


def test_json_round_trip_uses_utc_z_with_milliseconds() -> None:
    record = activity_from_json(
        json_activity(occurred_at="2024-10-01T10:30:00.123456+01:00", quantity=2, course_id="X1")
    )
    obj = activity_to_json(record)
    assert obj["occurred_at"] == "2024-10-01T09:30:00.123Z"
    assert obj["received_at"] is None and obj["quantity"] == 2.0
    assert activity_from_json(obj) == record
