"""``can_read_student``: every role against every relationship a student can have to it."""

from __future__ import annotations

import itertools

import pytest

from api.access import Principal, Role, can_read_student
from leap.reference import Student

IDS = ("S1", "S2", "T1", "T2", "D1", "D2", "")
DEPARTMENTS = ("D1", "D2")


def student(sid: str, tutor: str, department: str) -> Student:
    return Student(sid, "BSc Physics", 1, "full-time", department, tutor)


STUDENTS = [
    student(sid, tutor, department)
    for sid, tutor, department in itertools.product(("S1", "S2"), IDS, IDS)
]
PRINCIPALS = [
    Principal(role, sub, department if role is Role.DEPARTMENT else None)
    for role, sub, department in itertools.product(Role, IDS[:-1], DEPARTMENTS)
]


@pytest.mark.parametrize(
    ("principal", "subject", "allowed"),
    [
        (Principal(Role.STUDENT, "S1"), student("S1", "T1", "D1"), True),
        (Principal(Role.STUDENT, "S1"), student("S2", "T1", "D1"), False),  # a classmate
        (Principal(Role.STUDENT, "T1"), student("S2", "T1", "D1"), False),  # sub is no tutor
        (Principal(Role.TUTOR, "T1"), student("S2", "T1", "D1"), True),
        (Principal(Role.TUTOR, "T1"), student("S2", "T2", "D1"), False),  # a colleague's tutee
        (Principal(Role.TUTOR, "S2"), student("S2", "T2", "D1"), False),  # sub is no student
        (Principal(Role.TUTOR, "D1"), student("S2", "T2", "D1"), False),
        (Principal(Role.DEPARTMENT, "hod", "D1"), student("S2", "T2", "D1"), True),
        (Principal(Role.DEPARTMENT, "hod", "D1"), student("S2", "T2", "D2"), False),
        (Principal(Role.DEPARTMENT, "D2", "D1"), student("S2", "T2", "D2"), False),  # sub ≠ dept
        (Principal(Role.ADMIN, "root"), student("S2", "T2", "D2"), True),
        (Principal(Role.ADMIN, "root"), student("S2", "", ""), True),
    ],
)
def test_examples(principal: Principal, subject: Student, allowed: bool) -> None:
    assert can_read_student(principal, subject) is allowed


def test_every_principal_against_every_student() -> None:
    """The rule, restated per role, for every principal and student of a small world."""
    granted = 0
    for principal, subject in itertools.product(PRINCIPALS, STUDENTS):
        expected = {
            Role.ADMIN: True,
            Role.STUDENT: subject.student_id == principal.sub,
            Role.TUTOR: subject.tutor_id == principal.sub,
            Role.DEPARTMENT: subject.department == principal.department,
        }[principal.role]
        assert can_read_student(principal, subject) is expected, (principal, subject)
        granted += expected
    assert 0 < granted < len(PRINCIPALS) * len(STUDENTS)


def test_nobody_but_an_admin_reads_a_student_without_tutor_or_department() -> None:
    for principal in PRINCIPALS:
        orphan = student("S9", "", "")
        assert can_read_student(principal, orphan) is (principal.role is Role.ADMIN)


@pytest.mark.parametrize(
    ("role", "sub", "department"),
    [
        (Role.STUDENT, "", None),  # an empty id would match empty reference fields
        (Role.ADMIN, "", None),
        (Role.DEPARTMENT, "hod", None),
        (Role.DEPARTMENT, "hod", ""),
        (Role.TUTOR, "T1", "D1"),  # a department on another role is a confused token
    ],
)
def test_invalid_principals(role: Role, sub: str, department: str | None) -> None:
    with pytest.raises(ValueError):
        Principal(role, sub, department)
