"""The JSON import's fast validation path answers exactly as full validation does.

``activity_from_json`` skips fastavro's schema validation for records whose every field
already has the exact type the schema takes; these properties check that it only ever
skips it where full validation would have passed, and that what callers see (the record,
or the rejection's reason and message) is the same either way.
"""

from __future__ import annotations

from typing import Any

from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import ACTIVITY_EVENT, InvalidRecord, _plainly_valid_activity, activity_from_json

SOURCES = ["moodle", "computer_login", "submission", "lecture_capture", "attendance", "library"]

#: Values of each field: good ones, and ones of the wrong type or out of range.
ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3), st.integers()), max_size=2),
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.one_of(st.text(min_size=0, max_size=210), ANYTHING),
    "student_id": st.one_of(st.sampled_from(["S1000001", "ab.c-d_9", "", "a b", "é"]), ANYTHING),
    "source": st.one_of(st.sampled_from([*SOURCES, "Moodle", "email"]), ANYTHING),
    "action": st.one_of(st.text(max_size=8), ANYTHING),
    "occurred_at": st.one_of(
        st.sampled_from(
            [
                "2026-10-05T10:19:00.000Z",
                "2026-10-05T10:19:00.123456+01:00",
                "2026-10-05T10:19:00",
                "0001-01-01T00:30:00+01:00",
                "9999-12-31T23:59:59-05:00",
                "yesterday",
            ]
        ),
        ANYTHING,
    ),
    "quantity": st.one_of(st.floats(allow_nan=True, allow_infinity=True), ANYTHING),
    "course_id": st.one_of(st.none(), st.text(max_size=6), ANYTHING),
    "received_at": st.one_of(st.none(), st.just("2026-10-05T10:20:00Z"), ANYTHING),
    "attributes": st.one_of(
        st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3), ANYTHING
    ),
    "unknown": ANYTHING,
}


GOOD: dict[str, Any] = {
    "event_id": "moodle:1",
    "student_id": "S1000001",
    "source": "moodle",
    "action": "viewed",
    "occurred_at": "2026-10-05T10:19:00.000Z",
    "quantity": 1.0,
    "course_id": "EBS-BSC-BM",
    "received_at": None,
    "attributes": {},
}


@st.composite
def json_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A good line with up to three fields changed (to anything), dropped or added."""
    obj = dict(GOOD)
    for name in draw(st.lists(st.sampled_from(list(FIELDS)), max_size=3, unique=True)):
        if draw(st.integers(0, 5)) == 0:
            obj.pop(name, None)
        else:
            obj[name] = draw(FIELDS[name])
    return obj


def _fully_validated(obj: dict[str, Any]) -> tuple[str, Any]:
    """What ``activity_from_json`` answers with the fast path switched off."""
    import schemas.codec as codec

    original = codec._plainly_valid_activity
    codec._plainly_valid_activity = lambda record: False  # type: ignore[assignment]
    try:
        return _answer(obj)
    finally:
        codec._plainly_valid_activity = original


def _answer(obj: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", activity_from_json(obj)
    except InvalidRecord as exc:
        return "rejected", (exc.reason, exc.message)


@settings(max_examples=1500, deadline=None)
@given(json_objects())
def test_the_fast_path_answers_as_full_validation_does(obj: dict[str, Any]) -> None:
    assert _answer(obj) == _fully_validated(obj)


@settings(max_examples=1500, deadline=None)
@given(json_objects())
def test_the_fast_check_passes_only_records_fastavro_accepts(obj: dict[str, Any]) -> None:
    try:
        record = activity_from_json(obj)
    except InvalidRecord:
        return
    if _plainly_valid_activity(record):
        assert validate(record, ACTIVITY_EVENT.parsed, strict=True, raise_errors=False)


def test_a_usual_line_takes_the_fast_path() -> None:
    record = activity_from_json({**GOOD, "attributes": {"ip": "campus"}})
    assert _plainly_valid_activity(record)
