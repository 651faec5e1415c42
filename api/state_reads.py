"""Reading students' state from Redis: each one's indicator and days hashes, many at once.

Under load, many requests want their student's state at the same moment, and each Redis
command costs redis-py more CPU than the rest of an engagement read (a pooled connection,
a task for the socket timeout, two system calls, its bookkeeping). So :class:`StateReads`
sends the reads asked for in one turn of the event loop as *one* command, a script that
reads them all; a request alone waits only for the loop's next turn. A script runs alone
in Redis, so each student's days always match their indicator.

The worker owns the layout (``leap.state_keys``); this module only reads it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from leap.state_keys import days_key, indicator_key

__all__ = ["MAX_BATCH", "Hash", "StateReads", "read_states"]

Hash = Mapping[bytes, bytes]
#: Students read by one command at most: a batch runs alone in Redis, so keep it short.
MAX_BATCH = 100

_READ = """
local hashes = {}
for i, key in ipairs(KEYS) do hashes[i] = redis.call('HGETALL', key) end
return hashes
"""
#: Redis names a cached script by its SHA-1.
_READ_SHA = hashlib.sha1(_READ.encode(), usedforsecurity=False).hexdigest()


def _hash(flat: list[bytes]) -> dict[bytes, bytes]:
    """HGETALL's reply inside a script: field, value, field, value, ..."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


async def read_states(
    redis: Redis, prefix: str, student_ids: Sequence[str]
) -> list[tuple[Hash, Hash]]:
    """Each student's (indicator, days) hashes, empty where absent, in one command."""
    keys = [k for sid in student_ids for k in (indicator_key(prefix, sid), days_key(prefix, sid))]
    try:
        replies = await redis.evalsha(_READ_SHA, len(keys), *keys)
    except NoScriptError:  # first read since Redis started; EVAL caches the script
        replies = await redis.eval(_READ, len(keys), *keys)
    hashes = [_hash(flat) for flat in replies]
    return list(zip(hashes[::2], hashes[1::2], strict=True))


class StateReads:
    """Batches the reads of concurrent requests (one event-loop turn) into one command."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._asked: list[tuple[str, asyncio.Future[tuple[Hash, Hash]]]] = []
        self._sending: set[asyncio.Task[None]] = set()  # a task is only weakly referenced

    async def read(self, student_id: str) -> tuple[Hash, Hash]:
        """The student's (indicator, days) hashes; raises what reading them raised."""
        answer: asyncio.Future[tuple[Hash, Hash]] = asyncio.get_running_loop().create_future()
        self._asked.append((student_id, answer))
        if len(self._asked) == 1:  # the first this turn; the task starts on the next
            self._start()
        return await answer

    def _start(self) -> None:
        task = asyncio.create_task(self._send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self) -> None:
        asked, self._asked = self._asked[:MAX_BATCH], self._asked[MAX_BATCH:]
        if self._asked:  # more than a batch: the rest go at the same time
            self._start()
        try:
            states = await read_states(self.redis, self.prefix, [sid for sid, _ in asked])
        except asyncio.CancelledError:
            for _, answer in asked:
                answer.cancel()
            raise
        except Exception as exc:  # Redis down or slow: every request in the batch says so
            for _, answer in asked:
                if not answer.done():  # a request cancelled meanwhile (client gone)
                    answer.set_exception(exc)
            return
        for (_, answer), state in zip(asked, states, strict=True):
            if not answer.done():
                answer.set_result(state)
