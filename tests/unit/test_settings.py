"""Settings refuse what the worker cannot run on, at start and with what to do instead."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from leap.settings import Settings


def test_the_memory_store_is_the_default_and_accepted() -> None:
    assert Settings().table_store == "memory://"
    assert Settings(table_store="memory://").table_store == "memory://"


@pytest.mark.parametrize("store", ["rocksdb://", "aerospike://", "memory"])
def test_other_table_stores_are_refused_with_the_setting_to_use(store: str) -> None:
    with pytest.raises(ValidationError, match="LEAP_TABLE_STORE=memory://"):
        Settings(table_store=store)


@pytest.mark.parametrize("zone", ["Europe/Nowhere", "../etc/passwd", ""])
def test_an_unknown_time_zone_is_refused_with_the_setting_to_fix(zone: str) -> None:
    with pytest.raises(ValidationError, match="LEAP_TIMEZONE"):
        Settings(timezone=zone)
