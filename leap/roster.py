"""The students who get an indicator, as reference data says now, indexed for day closing.

Reference data changes while LEAP runs (``leap reference load`` publishes to a compacted
topic the worker and API follow), so the worker asks a roster, not a fixed dict. Only
students the institution has in scope are on it: everyone else's activity is still counted
in the daily tables, but they are scored, banded and shown nowhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from leap.institution import Institution
from leap.reference import Student, partition_for, student_from_record
from leap.scoring import Policy

__all__ = ["Roster", "apply_student_record"]


class Roster(Mapping[str, Student]):
    def __init__(
        self,
        institution: Institution,
        policy: Policy,
        partitions: int,
        students: Iterable[Student] = (),
    ) -> None:
        self.institution = institution
        self.policy = policy
        self.partitions = partitions
        self._students: dict[str, Student] = {}
        self._by_partition: dict[int, dict[str, Student]] = {p: {} for p in range(partitions)}
        for student in students:
            self.put(student)

    def put(self, student: Student) -> None:
        """Add or replace a student; one no longer in scope leaves the roster."""
        sid = student.student_id
        if not self.institution.in_scope(student):
            self.remove(sid)
            return
        self._students[sid] = student
        self._by_partition[partition_for(sid, self.partitions)][sid] = student

    def remove(self, student_id: str) -> None:
        if self._students.pop(student_id, None) is not None:
            del self._by_partition[partition_for(student_id, self.partitions)][student_id]

    def on_partition(self, partition: int) -> list[Student]:
        return list(self._by_partition[partition].values())

    def cohorts(self) -> list[str]:
        """Every cohort with a student in scope: each partition reports each of them."""
        return sorted({s.cohort for s in self._students.values()})

    def window_days(self, student: Student) -> int:
        return self.institution.window_days(student, self.policy)

    def __getitem__(self, student_id: str) -> Student:
        return self._students[student_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._students)

    def __len__(self) -> int:
        return len(self._students)


def apply_student_record(roster: Roster) -> Callable[[str, dict[str, Any] | None], None]:
    """How a reference-topic record changes the roster: a tombstone removes the student."""

    def apply(student_id: str, record: dict[str, Any] | None) -> None:
        if record is None:
            roster.remove(student_id)
            return
        student = student_from_record(record)
        if student.student_id != student_id:
            raise ValueError(f"record for {student.student_id} under key {student_id}")
        roster.put(student)

    return apply
