"""Reading a TOML file LEAP ships a default of (policy, institution), with errors that name it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["read_config_text"]


def read_config_text(path: Path | None, package: str, default: str, kind: str) -> tuple[str, str]:
    """The text of ``path``, or of ``default`` in ``package``; and how to name it in errors."""
    if path is None:
        return resources.files(package).joinpath(default).read_text(), f"built-in {default}"
    try:
        return Path(path).read_text(), str(path)
    except OSError as exc:
        raise ValueError(f"cannot read {kind} file {path}: {exc.strerror}") from exc
