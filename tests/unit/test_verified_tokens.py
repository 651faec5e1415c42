"""The verified-token cache on a fixed clock: how long an entry is served, and its bound."""

from __future__ import annotations

import pytest

from api.access import Principal, Role
from api.verified_tokens import VerifiedTokens

ALICE = Principal(Role.STUDENT, "S1")
BOB = Principal(Role.STUDENT, "S2")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_served_until_the_token_expires() -> None:
    clock = Clock(1000.0)
    tokens = VerifiedTokens(max_age=60, clock=clock)
    tokens.put("a.b.c", ALICE, expires=1030)
    clock.now = 1029.9
    assert tokens.get("a.b.c") == ALICE
    clock.now = 1030.0  # PyJWT: expired when now >= exp (before any leeway)
    assert tokens.get("a.b.c") is None


def test_served_at_most_max_age_after_verification() -> None:
    clock = Clock(1000.0)
    tokens = VerifiedTokens(max_age=60, clock=clock)
    tokens.put("a.b.c", ALICE, expires=1000 + 3600)
    clock.now = 1059.9
    assert tokens.get("a.b.c") == ALICE
    clock.now = 1060.0
    assert tokens.get("a.b.c") is None


def test_a_token_accepted_only_within_the_leeway_is_not_kept() -> None:
    tokens = VerifiedTokens(clock=Clock(1000.0))
    tokens.put("a.b.c", ALICE, expires=990)
    assert len(tokens) == 0
    assert tokens.get("a.b.c") is None


def test_only_the_exact_token_string_hits() -> None:
    tokens = VerifiedTokens(clock=Clock(1000.0))
    tokens.put("a.b.c", ALICE, expires=2000)
    assert tokens.get("a.b.C") is None
    assert tokens.get("a.b.c ") is None
    assert tokens.get("a.b") is None
    tokens.put("x.y.z", BOB, expires=2000)
    assert (tokens.get("a.b.c"), tokens.get("x.y.z")) == (ALICE, BOB)


def test_bounded_dropping_the_oldest_first() -> None:
    tokens = VerifiedTokens(max_entries=3, clock=Clock(1000.0))
    for n in range(5):
        tokens.put(f"t{n}", ALICE, expires=2000)
    assert len(tokens) == 3
    assert [tokens.get(f"t{n}") for n in range(5)] == [None, None, ALICE, ALICE, ALICE]
    tokens.put("t2", BOB, expires=2000)  # verified again: now the newest
    tokens.put("t5", ALICE, expires=2000)
    assert [tokens.get(t) for t in ("t2", "t3", "t4", "t5")] == [BOB, None, ALICE, ALICE]


def test_needs_room_for_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        VerifiedTokens(max_entries=0)
