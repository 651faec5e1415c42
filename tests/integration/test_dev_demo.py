"""Smoke test of ``leap dev``: the zero-install demo on its embedded Tansu broker."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from leap.brokers import free_port
from leap.dev import DEV_PREFIX
from tests.integration.leap_process import leap_env, run_leap

pytestmark = pytest.mark.integration


def test_leap_dev_shows_indicators_for_the_synthetic_cohort(tmp_path: Path, redis_url: str) -> None:
    env = leap_env(redis_url=redis_url, api_port=free_port())
    try:
        out = run_leap(["dev", "--students", "300", "--days", "8", "--exit"], env, tmp_path)
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        keys = list(client.scan_iter(match=f"{DEV_PREFIX}indicator:*", count=1000))
    finally:
        stale = list(redis.Redis.from_url(redis_url).scan_iter(match=f"{DEV_PREFIX}*"))
        if stale:
            redis.Redis.from_url(redis_url).delete(*stale)
    assert "Engagement indicators as of" in out
    for label in ("High", "Good", "Partial", "Low", "Very Low"):
        assert label in out
    assert len(keys) >= 290  # every synthetic student (make_students rounds per cohort)
