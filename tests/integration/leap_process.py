"""Running ``leap`` commands as child processes, as an operator would, for integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from leap.brokers import free_port

T = TypeVar("T")


def isolated_worker(topic_prefix: str, data_dir: Path) -> dict[str, Any]:
    """Settings for a worker of its own: app id, topics and web port no other test shares."""
    return {
        "app_id": f"{topic_prefix}leap",
        "data_dir": data_dir,
        "worker_web_port": free_port(),
        "activity_topic": f"{topic_prefix}leap.activity",
        "dead_letter_topic": f"{topic_prefix}leap.dead-letter",
        "indicator_changes_topic": f"{topic_prefix}leap.indicator-changes",
        "cohort_scores_topic": f"{topic_prefix}leap.cohort-scores",
        "alerts_topic": f"{topic_prefix}leap.alerts",
        "reference_students_topic": f"{topic_prefix}leap.reference.students",
        "contact_preferences_topic": f"{topic_prefix}leap.reference.contact-preferences",
        "broker_session_timeout": 6,
    }


def leap_env(**settings: object) -> dict[str, str]:
    """The environment with ``LEAP_*`` variables for the given settings (and no others)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEAP_")}
    env.update({f"LEAP_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def run_leap(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    """Run ``leap ARGS`` to completion; fail with its output if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "leap.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"leap {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextmanager
def leap_running(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """A long-running ``leap`` command (worker, api), stopped at the end; its log on failure."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "leap.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(
    probe: Callable[[], T | None], timeout: float, what: str, log: Path | None = None
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` and the log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:] if log else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
