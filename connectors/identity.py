"""Which student a source system's user is: an explicit map, never a guess.

Source systems know people by usernames, card numbers or their own ids; LEAP knows them
only by institutional student id. The map is a CSV file ``source_id,student_id`` with an
optional ``system`` column, so one file can hold the ids of several systems. Usernames are
case-insensitive on the systems that export them (Windows, most LMSs), so look-ups are too.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from schemas.ids import is_valid_student_id

__all__ = ["IdentityError", "IdentityMap"]

REQUIRED_COLUMNS = ("source_id", "student_id")


class IdentityError(ValueError):
    """The identity file cannot be trusted (bad header, bad student id, a conflict)."""


@dataclass
class IdentityMap:
    """Source user id -> student id; ``unmapped`` collects the users nobody mapped."""

    students: dict[str, str]  # casefolded source id -> student id
    unmapped: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path, system: str | None = None) -> IdentityMap:
        """Read ``path``; with ``system``, only rows of that system (or of none) apply.

        A source id mapped to two different students is refused rather than resolved
        either way: counting one student's activity for another is worse than not at all.
        """
        wanted = system.casefold() if system else None
        students: dict[str, str] = {}
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or ()]
            missing = [name for name in REQUIRED_COLUMNS if name not in header]
            if missing:
                raise IdentityError(f"{path}: no {', '.join(missing)} column (header: {header})")
            reader.fieldnames = header
            for row in reader:
                row_system = (row.get("system") or "").strip().casefold()
                if wanted and row_system and row_system != wanted:
                    continue
                source_id = (row["source_id"] or "").strip().casefold()
                student_id = (row["student_id"] or "").strip()
                where = f"{path}:{reader.line_num}"
                if not source_id:
                    raise IdentityError(f"{where}: empty source_id")
                if not is_valid_student_id(student_id):
                    raise IdentityError(f"{where}: student_id is not a valid student id")
                if students.setdefault(source_id, student_id) != student_id:
                    hint = "" if wanted else " (choose a system with --system)"
                    raise IdentityError(f"{where}: source id mapped to two students{hint}")
        return cls(students)

    def __len__(self) -> int:
        return len(self.students)

    def resolve(self, source_id: str) -> str | None:
        """The student id of ``source_id``, or None (remembered in ``unmapped``)."""
        key = source_id.strip().casefold()
        student = self.students.get(key)
        if student is None:
            self.unmapped.add(key)
        return student
