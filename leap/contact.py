"""Opting out of being contacted as a result of LEAP.

A student (or an administrator, for a request that arrived by email) records the choice on
the compacted topic ``leap.reference.contact-preferences``; every worker follows it. An
opted-out student's data is still processed and they still see their own indicator, but
their IndicatorChanges say ``contact_allowed=false`` and no alert is raised for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

__all__ = ["ContactPreferences", "contact_record"]

RequestedBy = Literal["student", "admin"]


def contact_record(
    student_id: str, contact_allowed: bool, requested_by: RequestedBy, at: datetime
) -> dict[str, Any]:
    """The topic's JSON value (key: the student id)."""
    return {
        "student_id": student_id,
        "contact_allowed": contact_allowed,
        "requested_by": requested_by,
        "updated_at": at.isoformat(),
    }


class ContactPreferences:
    """Who has opted out; everyone else may be contacted (the default)."""

    def __init__(self) -> None:
        self._opted_out: set[str] = set()

    def allows(self, student_id: str) -> bool:
        return student_id not in self._opted_out

    def apply(self, student_id: str, record: dict[str, Any] | None) -> None:
        """One record from the topic; a tombstone forgets the choice (back to allowed)."""
        if record is None or record["contact_allowed"] is True:
            self._opted_out.discard(student_id)
        elif record["contact_allowed"] is False:
            self._opted_out.add(student_id)
        else:
            raise ValueError(f"contact_allowed must be true or false: {record!r}")

    def __len__(self) -> int:
        return len(self._opted_out)
