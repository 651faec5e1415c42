"""The JSON import's fast validation path answers exactly as full validation does.

``activity_from_json`` accepts the usual line in one pass (``_plain_activity``), and
otherwise skips fastavro's schema validation for records whose every field already has
the exact type the schema takes; these properties check that both only ever accept where
full validation would have, and that what callers see (the record and its field order,
or the rejection's reason and message) is the same either way.
"""

from __future__ import annotations

import copy
from typing import Any

from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import (
    _ACTIVITY_FIELDS,
    ACTIVITY_EVENT,
    InvalidRecord,
    _plain_activity,
    _plainly_valid_activity,
    activity_from_json,
)

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
#: Timestamps in UTC or not, whole milliseconds or not, aware or not, well-formed or not.
INSTANTS = st.sampled_from(
    [
        "2026-10-05T10:19:00.000Z",
        "2026-10-05T10:19:00.123Z",
        "2026-10-05T10:19:00Z",
        "2026-10-05T10:19:00.000+00:00",
        "2026-10-05T10:19:00-00:00",
        "2026-10-05T10:19:00.123456Z",
        "2026-10-05T10:19:00.000999Z",
        "2026-10-05T10:19:00.123456+01:00",
        "2026-10-05T10:19:00",
        "2026-10-05",
        "2026-10-05T10:19:00.000+00:00:01",
        "0001-01-01T00:30:00+01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999Z",
        "9999-12-31T23:59:59-05:00",
        "2026-10-05T24:00:00Z",
        "yesterday",
        "",
    ]
)
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.one_of(st.text(min_size=0, max_size=210), ANYTHING),
    "student_id": st.one_of(st.sampled_from(["S1000001", "ab.c-d_9", "", "a b", "é"]), ANYTHING),
    "source": st.one_of(st.sampled_from([*SOURCES, "Moodle", "email"]), ANYTHING),
    "action": st.one_of(st.text(max_size=8), ANYTHING),
    "occurred_at": st.one_of(INSTANTS, ANYTHING),
    "quantity": st.one_of(st.floats(allow_nan=True, allow_infinity=True), ANYTHING),
    "course_id": st.one_of(st.none(), st.text(max_size=6), ANYTHING),
    "received_at": st.one_of(st.none(), INSTANTS, ANYTHING),
    "attributes": st.one_of(
        st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3), ANYTHING
    ),
    "unknown": ANYTHING,
}

#: Every field of the kind a feed sends, nearly all accepted: where the one-pass path is
#: taken, so that each of its details meets the full path's.
USUAL: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.text(min_size=1, max_size=201),
    "student_id": st.sampled_from(["S1000001", "ab.c-d_9", "-S1"]),
    "source": st.sampled_from(SOURCES),
    "action": st.text(max_size=8),
    "occurred_at": INSTANTS,
    "quantity": st.one_of(st.floats(min_value=-1.0), st.integers(0, 2**64)),
    "course_id": st.one_of(st.none(), st.text(max_size=6)),
    "received_at": st.one_of(st.none(), INSTANTS),
    "attributes": st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
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
    """What ``activity_from_json`` answers with both fast paths switched off."""
    import schemas.codec as codec

    plain, plainly_valid = codec._plain_activity, codec._plainly_valid_activity
    codec._plain_activity = lambda obj, reuse=False: None
    codec._plainly_valid_activity = lambda record: False
    try:
        return _answer(obj)
    finally:
        codec._plain_activity, codec._plainly_valid_activity = plain, plainly_valid


def _answer(obj: dict[str, Any], *, reuse: bool = False) -> tuple[str, Any]:
    try:
        record = activity_from_json(obj, reuse=reuse)
    except InvalidRecord as exc:
        return "rejected", (exc.reason, exc.message)
    # Field order too: it is the order ``activity_to_json`` writes them in.
    return "ok", (record, list(record))


@settings(max_examples=1500, deadline=None)
@given(json_objects())
def test_the_fast_path_answers_as_full_validation_does(obj: dict[str, Any]) -> None:
    assert _answer(obj) == _fully_validated(obj)


@settings(max_examples=1500, deadline=None)
@given(st.fixed_dictionaries(USUAL))
def test_usual_lines_are_answered_as_full_validation_does(obj: dict[str, Any]) -> None:
    assert _answer(obj) == _fully_validated(obj)


@settings(max_examples=1500, deadline=None)
@given(json_objects())
def test_reusing_the_object_answers_the_same(obj: dict[str, Any]) -> None:
    given_up = copy.deepcopy(obj)
    assert _answer(given_up, reuse=True) == _answer(obj)


@settings(max_examples=500, deadline=None)
@given(json_objects())
def test_without_reuse_the_callers_object_is_left_as_it_was(obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    _answer(obj)
    assert obj == before


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
    assert _plain_activity({**GOOD, "attributes": {"ip": "campus"}}) == record


def test_the_one_pass_check_names_every_field_of_the_schema() -> None:
    # _plain_activity reads these nine by name and trusts that no other key is present:
    # a field added to the schema must be added there too.
    assert set(_ACTIVITY_FIELDS) == set(GOOD)
