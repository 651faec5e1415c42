"""Tokens the API has already verified, remembered for a short while.

A portal widget sends the same bearer token with every request, and checking an RS256
signature costs more CPU than the rest of an engagement read. So a verified token's
principal is kept, under these rules:

* keyed by the exact token string: any other string (another signature, claim or header)
  misses, and is verified in full;
* only successes are stored: a refused token is checked again every time it is sent;
* an entry is served only before the token's ``exp`` and at most :data:`MAX_AGE_SECONDS`
  after it was verified, so an expired token is refused as before, and a key withdrawn
  from the identity provider's JWKS stops being trusted within that time;
* at most :data:`MAX_ENTRIES` entries, the oldest dropped first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from api.access import Principal

__all__ = ["MAX_AGE_SECONDS", "MAX_ENTRIES", "VerifiedTokens"]

#: How long a verification is trusted without repeating it, whatever the token's ``exp``.
MAX_AGE_SECONDS = 60.0
#: Enough for every student with the portal open in a minute at a large university;
#: about 10 MB at ~1 KB a token.
MAX_ENTRIES = 10_000


class VerifiedTokens:
    """Token string → principal, each entry valid until min(``exp``, verified + max age)."""

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self.max_age = max_age
        self.clock = clock
        # Insertion order is verification order: the first entry is the oldest.
        self._entries: dict[str, tuple[float, Principal]] = {}
        # Verification may also run in a worker thread (when a JWKS must be fetched).
        self._writing = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> Principal | None:
        """The token's principal if verified and still valid now; else None."""
        entry = self._entries.get(token)
        if entry is None or self.clock() >= entry[0]:
            return None  # an expired entry stays until evicted: it is never served
        return entry[1]

    def put(self, token: str, principal: Principal, expires: float) -> None:
        """Remember a token just verified, whose ``exp`` claim is ``expires`` (Unix time)."""
        now = self.clock()
        until = min(expires, now + self.max_age)
        if until <= now:  # accepted within the leeway only: nothing to remember
            return
        with self._writing:
            self._entries.pop(token, None)  # re-inserted last: it is now the newest
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[token] = (until, principal)
