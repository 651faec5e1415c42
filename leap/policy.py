"""Reading a scoring policy file; the rules themselves live in ``leap.scoring``."""

from __future__ import annotations

import tomllib
from pathlib import Path

from leap.packaged_files import read_config_text
from leap.scoring import Policy, policy_from_mapping

__all__ = ["DEFAULT_POLICY_NAME", "load_policy"]

DEFAULT_POLICY_NAME = "stream-2026.1.toml"


def load_policy(path: Path | None = None) -> Policy:
    """Load ``path``, or the policy shipped with LEAP; errors name the file."""
    text, where = read_config_text(path, "leap.policies", DEFAULT_POLICY_NAME, "policy")
    try:
        return policy_from_mapping(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ValueError(f"invalid policy {where}: {exc}") from exc
