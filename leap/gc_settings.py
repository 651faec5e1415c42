"""The cyclic garbage collector's settings for a long-running LEAP process.

Measured under load, the collector cost the API an engagement read more than its JSON did
(bench/api.py), and the worker 7-10 % of its CPU (bench/ingest.py): with Python's default
threshold (700) the youngest generation was collected every few requests or events, and
every so often a full collection walked everything start-up had loaded (the roster,
Kafka and HTTP clients, settings) while all work waited.

So, once started: what start-up loaded is frozen (never walked again: it lives as long
as the process), and the youngest generation is collected only after
:data:`YOUNG_THRESHOLD` more allocations than releases, which work in flight rarely
reaches. Almost everything a request or an event allocates is freed by reference counting.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["YOUNG_THRESHOLD", "relax_gc", "serving_gc"]

#: Room for the young objects of ~50 requests in flight (~200 each).
YOUNG_THRESHOLD = 10_000


def relax_gc() -> tuple[int, int, int]:
    """Freeze what exists now and raise the young threshold; returns the thresholds
    before, for ``serving_gc`` to restore (the worker keeps them for its lifetime)."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *thresholds[1:])
    return thresholds


@contextmanager
def serving_gc() -> Iterator[None]:
    """``relax_gc`` while serving; both undone on exit."""
    thresholds = relax_gc()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
