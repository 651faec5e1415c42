"""A student's newest indicator: what the ``indicators`` table holds per student.

The table keeps the student's whole Redis state (``leap.state_keys``), so Redis can be
rebuilt from it (``streams.redis_resync``), and banding reads the indicator and its as-of
date back to tell a change. A worker holds one per student for good, so the stored value
is one string, ~0.2 KB with its key where a dict of the state took ~1 KB (~2 KB after a
changelog recovery, every field string decoded afresh; docs/benchmarks.md, section 4)::

    '[1,"good","2026-10-13","12.3","13.5","7","2026.1","Physics","2","2026-10-13T02:00:00+00:00"]'

the JSON text of the layout version and the state's fields in ``FIELDS`` order, all
strings as Redis holds them (JSON: course and policy version are free text). The student
id is the table key, the label follows from the indicator. Values written before it,
``{"indicator", "as_of", "state": {field: value}}`` (the oldest without ``state``), are
still read, so a running deployment's changelogs recover.
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from leap.scoring import LABELS

__all__ = ["FIELDS", "Standing", "indicator_standing", "indicator_state", "indicator_value"]

LAYOUT = 1
#: The state's fields kept, in stored order (another field needs another layout).
FIELDS = (
    "indicator",
    "as_of",
    "score",
    "reference_score",
    "window_days",
    "policy_version",
    "course",
    "year",
    "updated_at",
)


class Standing(NamedTuple):
    """What banding compares: the student's newest indicator and the day it is as of."""

    indicator: str
    as_of: str


_STATE_FIELDS = itemgetter(*FIELDS)
_HEAD = f"[{LAYOUT},"


def indicator_value(state: Mapping[str, str]) -> str:
    """The stored value of a student's Redis state (as ``streams.cohort_banding`` makes it)."""
    if state["label"] != LABELS[state["indicator"]]:
        raise ValueError(f"label {state['label']!r} is not the indicator's")
    return orjson.dumps((LAYOUT, *_STATE_FIELDS(state))).decode()


def indicator_standing(value: str | Mapping[str, Any]) -> Standing:
    """A stored value's indicator and as-of date (read at every close for every student:
    the head of the text, not all of it decoded)."""
    if isinstance(value, str):
        # '[1,"good","2026-10-13",...': neither an indicator nor a date needs escaping
        head = value.split('"', 4)
        if len(head) == 5 and head[0] == _HEAD and head[2] == "," and head[1] in LABELS:
            return Standing(head[1], head[3])
        return Standing(*_fields(value)[:2])  # not this layout: refused there
    return Standing(value["indicator"], value["as_of"])


def indicator_state(student_id: str, value: str | Mapping[str, Any]) -> dict[str, str] | None:
    """A stored value's Redis state; None for a value written before states were kept."""
    if isinstance(value, str):
        state = dict(zip(FIELDS, _fields(value), strict=True))
        state["student_id"] = student_id
        state["label"] = LABELS[state["indicator"]]
        return state
    kept = value.get("state")
    return dict(kept) if kept else None


def _fields(value: str) -> list[str]:
    fields = orjson.loads(value)
    if not isinstance(fields, list) or not fields or fields[0] != LAYOUT:
        raise ValueError(f"not an indicator value of layout {LAYOUT}: {value[:40]!r}")
    if len(fields) != 1 + len(FIELDS) or fields[1] not in LABELS:
        raise ValueError(f"not an indicator value of {len(FIELDS)} fields: {value[:40]!r}")
    return fields[1:]
