"""Reading a scoring policy file; the rules themselves live in ``leap.scoring``."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from leap.scoring import Policy, policy_from_mapping

__all__ = ["DEFAULT_POLICY_NAME", "load_policy"]

DEFAULT_POLICY_NAME = "stream-2026.1.toml"


def load_policy(path: Path | None = None) -> Policy:
    """Load ``path``, or the policy shipped with LEAP; errors name the file."""
    if path is None:
        text = resources.files("leap.policies").joinpath(DEFAULT_POLICY_NAME).read_text()
        where = f"built-in {DEFAULT_POLICY_NAME}"
    else:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ValueError(f"cannot read policy file {path}: {exc.strerror}") from exc
        where = str(path)
    try:
        return policy_from_mapping(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ValueError(f"invalid policy {where}: {exc}") from exc
