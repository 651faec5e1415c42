"""Naming the event a table write belongs to, when processing events in batches."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust.streams import _current_event
from faust.types import EventT

__all__ = ["processing"]


@contextmanager
def processing(event: EventT) -> Iterator[None]:
    """Faust writes a table change to the changelog partition of the *current* event
    (a per-task context variable). In a batch no event is current, so name the one
    whose student the write is for. Only the context variable is set: the stream's own
    ``current_event`` attribute belongs to the task filling the batch."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
