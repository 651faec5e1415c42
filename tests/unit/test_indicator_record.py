"""The value the ``indicators`` table keeps per student: the Redis state, compactly, and the
layout written before it still read (running changelogs recover from it)."""

from __future__ import annotations

from typing import Any

import pytest
from faust.serializers import codecs
from hypothesis import given
from hypothesis import strategies as st

from leap.scoring import INDICATORS, LABELS
from streams.indicator_record import (
    FIELDS,
    Standing,
    indicator_standing,
    indicator_state,
    indicator_value,
)
from streams.redis_resync import indicator_hashes, indicator_partition

JSON = codecs.get_codec("json")  # the tables' value serializer

texts = st.text(max_size=40)  # course and policy version are free text: "|", quotes, unicode
states_st = st.builds(
    lambda sid, indicator, day, score, ref, window, version, course, year, at: {
        "student_id": sid,
        "indicator": indicator,
        "label": LABELS[indicator],
        "score": repr(score),
        "reference_score": repr(ref),
        "as_of": day.isoformat(),
        "window_days": str(window),
        "policy_version": version,
        "course": course,
        "year": str(year),
        "updated_at": at.isoformat(),
    },
    st.text(min_size=1, max_size=20),
    st.sampled_from(INDICATORS),
    st.dates(),
    st.floats(allow_nan=False),
    st.floats(allow_nan=False),
    st.integers(1, 60),
    texts,
    texts,
    st.integers(1, 9),
    st.datetimes(),
)


def through_changelog(value: Any) -> Any:
    """What a recovering worker's table holds: the value after the table's serializer."""
    return JSON.loads(JSON.dumps(value))


def old_layout(state: dict[str, str]) -> dict[str, Any]:
    """How the value was stored before the compact layout (still in changelogs)."""
    return {"indicator": state["indicator"], "as_of": state["as_of"], "state": state}


@given(state=states_st)
def test_the_redis_state_survives_the_table(state: dict[str, str]) -> None:
    value = through_changelog(indicator_value(state))
    assert isinstance(value, str)
    assert indicator_state(state["student_id"], value) == state
    assert indicator_standing(value) == Standing(state["indicator"], state["as_of"])


@given(state=states_st)
def test_the_old_layout_reads_the_same(state: dict[str, str]) -> None:
    old = through_changelog(old_layout(state))
    new = through_changelog(indicator_value(state))
    assert indicator_state(state["student_id"], old) == indicator_state(state["student_id"], new)
    assert indicator_standing(old) == indicator_standing(new)


def test_a_value_from_before_states_were_kept_has_no_state() -> None:
    old = {"indicator": "low", "as_of": "2026-11-29"}
    assert indicator_state("S1", old) is None
    assert indicator_standing(old) == Standing("low", "2026-11-29")


def test_the_value_is_a_fifth_of_the_old_one_on_the_changelog() -> None:
    state = {
        "student_id": "S000123",
        "indicator": "good",
        "label": "Good",
        "score": repr(12.345678901234),
        "reference_score": repr(13.5),
        "as_of": "2026-10-13",
        "window_days": "7",
        "policy_version": "2026.1",
        "course": "BSc Computer Science",
        "year": "2",
        "updated_at": "2026-10-13T02:00:00.123456+00:00",
    }
    new, old = JSON.dumps(indicator_value(state)), JSON.dumps(old_layout(state))
    assert len(new) < 0.5 * len(old)
    assert [name for name in FIELDS if name not in state] == []


@pytest.mark.parametrize(
    "value",
    [
        "",
        "[]",
        '{"indicator": "good"}',
        '[2,"good","2026-10-13","1","1","7","v","c","2","t"]',  # a layout not known here
        '[1,"great","2026-10-13","1","1","7","v","c","2","t"]',  # not an indicator
        "1|good|2026-10-13",
    ],
)
def test_a_value_of_another_layout_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        indicator_standing(value)
    with pytest.raises(ValueError):
        indicator_state("S1", value)


def test_a_value_missing_fields_is_refused_where_they_are_read() -> None:
    value = '[1,"good","2026-10-13"]'
    assert indicator_standing(value) == Standing("good", "2026-10-13")  # its head is whole
    with pytest.raises(ValueError):
        indicator_state("S1", value)


def test_a_label_that_is_not_the_indicators_is_refused() -> None:
    with pytest.raises(ValueError):
        indicator_value({"indicator": "good", "label": "Low"})


def test_a_resync_rebuilds_redis_from_either_layout() -> None:
    states = [
        {**dict.fromkeys(FIELDS, "x"), "indicator": "low", "label": "Low", "student_id": sid}
        for sid in ("S1", "S2")
    ]
    items = [
        ("S1", through_changelog(indicator_value(states[0]))),
        ("S2", through_changelog(old_layout(states[1]))),
        ("S3", {"indicator": "low", "as_of": "2026-11-29"}),  # no state: nothing to rewrite
    ]
    active = {indicator_partition(states[0], 4)}
    hashes = indicator_hashes(items, active, 4, "p:")
    assert hashes == {"p:indicator:S1": states[0], "p:indicator:S2": states[1]}
