"""A ``redis-server`` of a test's own, for tests that kill Redis or need its state alone
(script cache, command counts): never the shared one."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis

from leap.brokers import free_port
from tests.integration.leap_process import wait_for

__all__ = ["PrivateRedis"]


class PrivateRedis:
    """A ``redis-server`` of this test's own, that can be killed and started again, empty."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = workdir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self._proc is None
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [
                    *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no"),  # memory only: restarts empty
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._answers, 10, f"redis-server on port {self.port}", self.log)

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=2)

    def _answers(self) -> bool:
        client = self.client()
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()
