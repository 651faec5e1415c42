"""The staff-page rules, pure: tutee lists, cohort views, who sets a preference, sorting,
and what a preference body and a distribution hash must look like."""

from __future__ import annotations

import pytest

from api.access import (
    Principal,
    Role,
    can_read_cohort,
    can_set_contact,
    is_staff,
    visible_tutees,
)
from api.cohorts import parse_distribution
from api.contact import parse_preference
from api.problems import ProblemError
from api.tutees import band_rank, sort_key
from leap.reference import Student

A = Student("S1", "PHYS", 1, "full-time", "Physics", "T1")
B = Student("S2", "PHYS", 1, "full-time", "History", "T1")  # T1's tutee in another department
C = Student("S3", "HIST", 1, "full-time", "History", "T2")
ROSTER = {s.student_id: s for s in (A, B, C)}


@pytest.mark.parametrize(
    ("principal", "tutor", "expected"),
    [
        (Principal(Role.TUTOR, "T1"), "T1", {"S1", "S2"}),
        (Principal(Role.TUTOR, "T1"), "T2", None),  # a colleague's list
        (Principal(Role.TUTOR, "T9"), "T9", set()),  # their own, empty
        (Principal(Role.DEPARTMENT, "hod", "Physics"), "T1", {"S1"}),
        (Principal(Role.DEPARTMENT, "hod", "Physics"), "T2", None),
        (Principal(Role.ADMIN, "root"), "T1", {"S1", "S2"}),
        (Principal(Role.ADMIN, "root"), "T9", None),
        (Principal(Role.STUDENT, "S1"), "T1", None),  # even their own tutor's
    ],
)
def test_visible_tutees(principal: Principal, tutor: str, expected: set[str] | None) -> None:
    listed = visible_tutees(principal, tutor, ROSTER)
    assert (None if listed is None else {s.student_id for s in listed}) == expected


def test_cohorts_contact_and_staff() -> None:
    physics = [A, B]
    assert can_read_cohort(Principal(Role.TUTOR, "T1"), physics)
    assert not can_read_cohort(Principal(Role.TUTOR, "T2"), physics)
    assert can_read_cohort(Principal(Role.DEPARTMENT, "h", "History"), physics)
    assert not can_read_cohort(Principal(Role.STUDENT, "S1"), physics)
    assert not can_read_cohort(Principal(Role.ADMIN, "root"), [])  # out of scope
    assert can_set_contact(Principal(Role.STUDENT, "S1"), A)
    assert not can_set_contact(Principal(Role.STUDENT, "S2"), A)
    assert not can_set_contact(Principal(Role.TUTOR, "T1"), A)
    assert not can_set_contact(Principal(Role.DEPARTMENT, "h", "Physics"), A)
    assert can_set_contact(Principal(Role.ADMIN, "root"), A)
    assert [is_staff(Principal(r, "x", "D" if r is Role.DEPARTMENT else None)) for r in Role] == [
        False,
        True,
        True,
        True,
    ]


def test_tutee_order() -> None:
    entries = [
        {"student_id": sid, "indicator": level, "trend": trend}
        for sid, level, trend in [
            ("u", None, None),
            ("g", "good", -3),
            ("v0", "very_low", 0),
            ("vn", "very_low", None),
            ("v2", "very_low", -2),
            ("h", "high", 4),
        ]
    ]
    assert [e["student_id"] for e in sorted(entries, key=sort_key)] == [
        "v2",
        "v0",
        "vn",
        "g",
        "h",
        "u",
    ]
    assert band_rank("high") - band_rank("very_low") == 4


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b'{"contact_allowed": false}', False), (b'{"contact_allowed":true}', True)],
)
def test_preference_bodies(body: bytes, expected: bool) -> None:
    assert parse_preference(body) is expected


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"", 400),
        (b"\xff", 400),
        (b"[" * 100_000, 400),
        (b"null", 422),
        (b'{"contact_allowed": null}', 422),
        (b'{"contactAllowed": false}', 422),
    ],
)
def test_bad_preference_bodies(body: bytes, status: int) -> None:
    with pytest.raises(ProblemError) as refused:
        parse_preference(body)
    assert refused.value.response.status_code == status


def test_distribution_contract() -> None:
    good = {
        b"as_of": b"2025-03-14",
        b"reference_score": b"12.5",
        b"policy_version": b"p",
        b"size": b"3",
        **{level.encode(): b"1" for level in ("high", "good", "partial")},
        b"low": b"0",
        b"very_low": b"0",
    }
    assert parse_distribution(good)["counts"]["high"] == 1
    for broken in (
        {**good, b"size": b"4"},
        {**good, b"low": b"-1", b"high": b"2"},
        {**good, b"reference_score": b"nan"},
        {k: v for k, v in good.items() if k != b"very_low"},
    ):
        with pytest.raises((ValueError, KeyError)):
            parse_distribution(broken)
