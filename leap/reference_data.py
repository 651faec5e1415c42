"""Where a process gets its reference data: a CSV file, or the compacted topics.

``LEAP_STUDENTS`` set: the roster is read from that file once (development, tests). Unset:
the roster and contact preferences are loaded from their compacted topics before anything
is scored, then followed, so ``leap reference load`` and opt-outs take effect while running.
Contact preferences always come from their topic: an opt-out must never be missed.
"""

from __future__ import annotations

import logging

from leap.compacted import CompactedTopic
from leap.contact import ContactPreferences
from leap.reference import load_students
from leap.roster import Roster, apply_student_record
from leap.settings import Settings

__all__ = ["load_reference_data"]

log = logging.getLogger(__name__)


async def load_reference_data(
    settings: Settings, roster: Roster, preferences: ContactPreferences
) -> list[CompactedTopic]:
    """Fill ``roster`` and ``preferences``; returns the topics to keep following."""
    servers = settings.bootstrap_servers
    followers = [
        CompactedTopic(servers, settings.contact_preferences_topic, preferences.apply),
    ]
    if settings.students is not None:
        for student in load_students(settings.students).values():
            roster.put(student)
    else:
        followers.append(
            CompactedTopic(servers, settings.reference_students_topic, apply_student_record(roster))
        )
    for follower in followers:
        await follower.load()
    log.info(
        "reference data: %d students in scope, %d opted out of contact",
        len(roster),
        len(preferences),
    )
    return followers
