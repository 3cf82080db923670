"""Atomic file writes, free of heavy imports so capture and runtime can use them.

Every artifact socketedge writes goes through here: the bytes go to a hidden temporary file in the destination's
folder, are checked (count written, flushed, optionally fsynced) and only then renamed over the destination
(``os.replace`` is atomic). A failure at any point — disk full, permission, Ctrl-C — removes the temporary file
and leaves whatever was at the destination before untouched.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_name(path: Path) -> Path:
    """The hidden temporary name a write of ``path`` uses (unique per process and thread; '.tmp' marks it)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident() % 100000}.tmp")


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder: so a rename or new entry in it survives a power cut). Best effort:
    some filesystems do not open folders or do not fsync them; the rename itself is still atomic."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path, durable: bool = True) -> Iterator[Path]:
    """``with atomic_path(out) as tmp: writer(tmp)``: for writers that need a file name (onnx, torch,
    safetensors). On success the file is fsynced (``durable``) and renamed to ``path``; on any exception the
    temporary file is removed and ``path`` keeps its previous content."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if not tmp.is_file():
            raise OSError(f"the writer produced no file for {path}")
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)


def write_bytes_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically, checking that every byte reached the file before the rename."""
    path = Path(path)
    with atomic_path(path, durable=False) as tmp:
        view = memoryview(data)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            while view:
                n = os.write(fd, view)
                if n <= 0:  # a short write that makes no progress: the device is full
                    raise OSError(28, "No space left on device", str(path))
                view = view[n:]
            if durable:
                os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size != len(data):
            raise OSError(5, f"wrote {size} of {len(data)} bytes", str(path))
    if durable:
        fsync_path(path.parent)


def write_text_atomic(path: Path, text: str, durable: bool = True) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def write_json_atomic(path: Path, data: dict | str, durable: bool = True) -> None:
    write_text_atomic(path, data if isinstance(data, str) else json.dumps(data, indent=2), durable=durable)
