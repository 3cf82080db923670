"""Atomic file writes (temporary file + os.replace), free of heavy imports so capture and runtime can use them."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json_atomic(path: Path, data: dict | str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    os.replace(tmp, path)
