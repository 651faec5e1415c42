"""Who may read whose engagement record: the API's authorisation rules, pure and total.

LEAP shows a student's engagement to the student and to the staff who support them, and to
nobody else. The rules only compare a verified :class:`Principal` with the reference data
(:class:`~leap.reference.Student`); no I/O, so they are tested exhaustively.

Staff (tutor, department, admin) reads of one student's data are audited; a student's
reads of their own are not (:func:`is_staff`). Only the student, or an admin acting on a
request they sent another way, may change their contact preference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from leap.reference import Student

__all__ = [
    "Principal",
    "Role",
    "Roster",
    "can_read_cohort",
    "can_read_student",
    "can_set_contact",
    "is_staff",
    "visible_tutees",
]


class Role(StrEnum):
    """The ``role`` claim of an API token."""

    STUDENT = "student"  # their own record: ``sub`` is the student id
    TUTOR = "tutor"  # their tutees: ``sub`` is the tutor id in the reference data
    DEPARTMENT = "department"  # everyone in the ``department`` claim's department
    ADMIN = "admin"  # everyone


@dataclass(frozen=True)
class Principal:
    """The verified caller. Empty ids never match anything, so they are refused here."""

    role: Role
    sub: str
    department: str | None = None

    def __post_init__(self) -> None:
        if not self.sub:
            raise ValueError("a principal needs a non-empty subject")
        if (self.role is Role.DEPARTMENT) != bool(self.department):
            raise ValueError("the department role, and only it, names a department")


#: The reference data the API authorises against: the students in scope by id (a
#: ``leap.roster.Roster`` following the reference topic, or a plain dict in tests).
Roster = Mapping[str, Student]


def is_staff(principal: Principal) -> bool:
    """Staff reads of a student's data are audited; a student's own are not."""
    return principal.role is not Role.STUDENT


def can_read_student(principal: Principal, student: Student) -> bool:
    """True when ``principal`` may read ``student``'s engagement record."""
    match principal.role:
        case Role.ADMIN:
            return True
        case Role.STUDENT:
            return student.student_id == principal.sub
        case Role.TUTOR:
            return student.tutor_id == principal.sub
        case Role.DEPARTMENT:
            return student.department == principal.department


def can_set_contact(principal: Principal, student: Student) -> bool:
    """The student's own choice, or an admin recording one that arrived another way."""
    match principal.role:
        case Role.ADMIN:
            return True
        case Role.STUDENT:
            return student.student_id == principal.sub
        case _:
            return False


def visible_tutees(principal: Principal, tutor_id: str, roster: Roster) -> list[Student] | None:
    """The tutor's tutees the principal may see, or None if the list is not theirs to see.

    The tutor themselves always gets their list (possibly empty); department staff get the
    tutees in their department and admins all of them, if there are any; students, other
    tutors and staff with no such tutee get None (a 404, as for an unknown tutor)."""
    if principal.role is Role.STUDENT:
        return None
    if principal.role is Role.TUTOR and principal.sub != tutor_id:
        return None
    tutees = [
        s for s in roster.values() if s.tutor_id == tutor_id and can_read_student(principal, s)
    ]
    if not tutees and principal.role is not Role.TUTOR:
        return None
    return tutees


def can_read_cohort(principal: Principal, members: Iterable[Student]) -> bool:
    """A cohort's distribution (aggregates only) is for staff with a student in it: the
    tutor of one of its students, their department, or an admin (if it has students)."""
    if principal.role is Role.STUDENT:
        return False
    return any(can_read_student(principal, s) for s in members)
