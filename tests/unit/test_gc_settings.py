"""The collector settings apply while serving, and are undone when it stops."""

from __future__ import annotations

import gc

from leap.gc_settings import YOUNG_THRESHOLD, serving_gc


def test_serving_gc_freezes_start_up_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with serving_gc():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
        created_while_serving = [[] for _ in range(10)]
        assert gc.is_tracked(created_while_serving)
        assert any(o is created_while_serving for o in gc.get_objects())  # still collectable
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
