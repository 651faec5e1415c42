"""The cyclic garbage collector's settings while the API serves requests.

Measured under load (bench/api.py), the collector cost an engagement read more than its
JSON did: every request in flight holds a few hundred young container objects, so with
Python's default threshold (700) the youngest generation was collected every few requests,
and every few thousand requests a full collection walked everything start-up had loaded
(the roster, Kafka and HTTP clients, settings) while all requests waited.

So, while serving: what start-up loaded is frozen (never walked again: it lives as long
as the process), and the youngest generation is collected only after
:data:`YOUNG_THRESHOLD` more allocations than releases, which the requests in flight
rarely reach. Almost everything a request allocates is freed by reference counting.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["YOUNG_THRESHOLD", "serving_gc"]

#: Room for the young objects of ~50 requests in flight (~200 each).
YOUNG_THRESHOLD = 10_000


@contextmanager
def serving_gc() -> Iterator[None]:
    """Freeze what exists now and raise the young threshold; both undone on exit."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
