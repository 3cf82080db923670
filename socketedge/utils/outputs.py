"""Checks of output paths, run before any work starts: a mistake in ``--out`` or ``--json`` must not be found
only after minutes of training or export (and must not leave temporary files behind)."""

from __future__ import annotations

import os
from pathlib import Path

from socketedge.errors import ConfigError


def _check_parents(path: Path, option: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(f"{option} {path}: the directory {parent} is not writable")
            return


def check_output_file(path: Path | str, option: str, example: str | None = None) -> Path:
    """``path`` will be written as a file: it must not be a directory, and its folder must be creatable."""
    path = Path(path)
    if path.is_dir():
        hint = f", e.g. {path / example}" if example else ""
        raise ConfigError(f"{option} {path} is a directory; give a file name{hint}")
    _check_parents(path, option)
    return path


def check_output_dir(path: Path | str, option: str) -> Path:
    """``path`` will be created (or added to) as a directory: it must not be a file."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file; give a directory")
    _check_parents(path, option)
    return path
