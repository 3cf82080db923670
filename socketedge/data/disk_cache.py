"""Decoded frames on disk: one flat (N, C, H, W) uint8/uint16 file per image list and size, written once and
reused by every later run over the same files.

A cache entry is ``CACHE_DIR/<key>/`` holding ``frames.bin`` (the raw array, C order) and ``meta.json``. The key
hashes what the pixels depend on: the format version, the modality, the size and, for every file in order, its
absolute path, byte size and mtime — editing, adding, removing or reordering a file gives a new key.

Safe under concurrency and interruption:

- builders of one key take an exclusive ``flock`` on ``<key>.lock``: a second run waits for the first and then
  reuses its entry instead of decoding the set again; a killed builder's lock is released by the kernel;
- an entry is built in a hidden temporary folder, fsynced, and renamed to ``<key>/`` only when complete, so a
  build cut short (Ctrl-C, kill, full disk, power loss) never leaves anything under the entry's name; its
  temporary folder is removed by the next build of that key;
- opening checks ``meta.json`` against the expected shape and dtype and ``frames.bin``'s size against it; an entry
  that fails (damaged or truncated outside socketedge) is rebuilt.

Frames are read back with ``os.pread`` into fresh buffers rather than through a memory map: a map's touched pages
count towards the process's resident memory, and an epoch touches every page, so a 13 GB set would show 13 GB of
RSS; reads through the page cache leave that to the kernel.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from socketedge.errors import DataError
from socketedge.utils.atomic import fsync_path
from socketedge.utils.progress import console

CACHE_FORMAT = "socketedge-frame-cache"
# Raise when the decoded pixels of an unchanged file would differ (decoder, resize): old entries stop matching.
CACHE_VERSION = 1
CACHE_ENV = "SOCKETEDGE_CACHE_DIR"
DATA_FILE = "frames.bin"
META_FILE = "meta.json"


def default_cache_dir() -> Path:
    """``$SOCKETEDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/socketedge/frames``, else ``~/.cache/socketedge/frames``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "socketedge" / "frames"


def cache_key(paths: Iterable[Path], modality: str, shape: tuple[int, ...], dtype: np.dtype) -> str:
    """What the decoded pixels depend on, hashed: the files (path, size, mtime) in order, modality, frame shape."""
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_FORMAT, CACHE_VERSION, modality, list(shape), np.dtype(dtype).str]).encode())
    for p in paths:
        try:
            st = os.stat(p)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"  # reported by name when the build decodes it
        h.update(f"\n{Path(p).absolute()}\t{stamp}".encode())
    return h.hexdigest()[:32]


class DiskFrames:
    """(N, C, H, W) frames in a cache file, indexed like a tensor without loading it.

    Any index (``frames[idx_tensor]``, ``frames[list]``, ``frames[a:b]``, ``frames[i]``) reads those frames into a
    new tensor, so code written for an in-memory tensor works unchanged; ``view(a, b)`` is rows a..b without
    reading them."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, start: int = 0, stop: int | None = None):
        self.path = Path(path)
        self._frame_shape = tuple(shape[1:])
        self._np_dtype = np.dtype(dtype)
        self._rows = shape[0]
        self.start = start
        self.stop = shape[0] if stop is None else stop
        self._frame_bytes = int(np.prod(self._frame_shape)) * self._np_dtype.itemsize
        self._fd = os.open(self.path, os.O_RDONLY)

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def __getstate__(self):  # picklable (a new descriptor is opened on the other side)
        return {"path": self.path, "shape": (self._rows, *self._frame_shape), "dtype": self._np_dtype.str,
                "start": self.start, "stop": self.stop}

    def __setstate__(self, state):
        self.__init__(state["path"], state["shape"], np.dtype(state["dtype"]), state["start"], state["stop"])

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.stop - self.start, *self._frame_shape))

    @property
    def dtype(self) -> torch.dtype:
        return torch.from_numpy(np.empty(0, self._np_dtype)).dtype

    def __len__(self) -> int:
        return self.stop - self.start

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self._frame_shape), self._np_dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        fb = self._frame_bytes
        # consecutive rows are read in one call: a chunk is one pread, a shuffled batch one per frame
        i = 0
        while i < len(rows):
            j = i + 1
            while j < len(rows) and rows[j] == rows[j - 1] + 1:
                j += 1
            want = (j - i) * fb
            buf = os.pread(self._fd, want, (self.start + int(rows[i])) * fb)
            if len(buf) != want:
                raise DataError(f"frame cache {self.path} is shorter than its metadata says (truncated while in "
                                "use?); delete it and run again")
            flat[i:j].reshape(-1)[:] = np.frombuffer(buf, np.uint8)
            i = j
        return out

    def __getitem__(self, index) -> torch.Tensor:
        n = len(self)
        if isinstance(index, slice):
            return self[torch.arange(*index.indices(n))]
        if isinstance(index, (int, np.integer)) or (isinstance(index, torch.Tensor) and index.ndim == 0):
            i = int(index)
            i = i + n if i < 0 else i
            if not 0 <= i < n:
                raise IndexError(f"index {int(index)} out of range for {n} frames")
            return torch.from_numpy(self._read_rows(np.array([i]))[0])
        rows = np.asarray(index.cpu() if isinstance(index, torch.Tensor) else index)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64).reshape(-1)
        rows = np.where(rows < 0, rows + n, rows)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"index out of range for {n} frames")
        return torch.from_numpy(self._read_rows(rows))

    def view(self, start: int, stop: int) -> "DiskFrames":
        """Rows start..stop (clipped like a slice), nothing read."""
        start, stop, _ = slice(start, stop).indices(len(self))
        return DiskFrames(self.path, (self._rows, *self._frame_shape), self._np_dtype, self.start + start,
                          self.start + max(start, stop))

    def tensor(self) -> torch.Tensor:
        """Every row of this view, read into memory."""
        return torch.from_numpy(self._read_rows(np.arange(len(self))))

    def __array__(self, dtype=None, copy=None):
        arr = self._read_rows(np.arange(len(self)))
        return arr if dtype is None else arr.astype(dtype)

    def __repr__(self) -> str:
        return f"DiskFrames({self.path}, rows {self.start}:{self.stop}, {tuple(self.shape)}, {self._np_dtype})"


def _expected_meta(key: str, shape: tuple[int, ...], dtype: np.dtype) -> dict:
    return {"format": CACHE_FORMAT, "version": CACHE_VERSION, "key": key, "shape": list(shape),
            "dtype": np.dtype(dtype).str}


def _open_entry(entry: Path, key: str, shape: tuple[int, ...], dtype: np.dtype) -> DiskFrames | None:
    """The entry as DiskFrames if it is complete and matches; None if absent, incomplete or damaged."""
    try:
        meta = json.loads((entry / META_FILE).read_text())
        size = (entry / DATA_FILE).stat().st_size
    except (OSError, ValueError):
        return None
    expected = _expected_meta(key, shape, dtype)
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expected.items()) or not meta.get("complete"):
        return None
    if size != int(np.prod(shape)) * np.dtype(dtype).itemsize:
        return None
    return DiskFrames(entry / DATA_FILE, shape, dtype)


def cached_frames(paths: list[Path], modality: str, frame_shape: tuple[int, ...], dtype: np.dtype,
                  fill: Callable[[Callable[[int, np.ndarray], None]], None], cache_dir: Path | None = None,
                  what: str = "frames") -> tuple[DiskFrames, bool]:
    """(frames, built): the cache entry of ``paths`` decoded to ``frame_shape`` — reused when a complete one
    exists, else built by ``fill(put)``, which must call ``put(i, frame)`` for i = 0..N-1 in order (and raise to
    abandon the build)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    shape = (len(paths), *frame_shape)
    key = cache_key(paths, modality, shape, dtype)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = open(cache_dir / f"{key}.lock", "a")
    except OSError as e:
        raise DataError(f"cannot use the frame cache {cache_dir} ({e.strerror}); pass --cache-dir DIR on a "
                        "writable disk") from None
    entry = cache_dir / key
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.print(f"waiting for another run that is caching these {what} ({entry})", highlight=False)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            frames = _open_entry(entry, key, shape, dtype)
            if frames is not None:
                return frames, False
            if entry.exists():  # incomplete or damaged: only a build holding this lock may replace it
                console.print(f"[yellow]frame cache {entry} is incomplete or damaged; rebuilding it[/]",
                              highlight=False)
                shutil.rmtree(entry, ignore_errors=True)
            for stale in cache_dir.glob(f".{key}.*.tmp"):  # left by an interrupted build of this key
                shutil.rmtree(stale, ignore_errors=True)
            _build(cache_dir, entry, key, shape, dtype, fill)
            frames = _open_entry(entry, key, shape, dtype)
            if frames is None:  # pragma: no cover - the entry was just written and checked
                raise DataError(f"frame cache {entry} could not be read back after writing it")
            return frames, True
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _build(cache_dir: Path, entry: Path, key: str, shape: tuple[int, ...], dtype: np.dtype, fill) -> None:
    tmp = cache_dir / f".{key}.{os.getpid()}.tmp"
    tmp.mkdir()
    frame_shape, n = shape[1:], shape[0]
    written = 0
    try:
        with open(tmp / DATA_FILE, "wb") as fh:
            def put(i: int, frame: np.ndarray) -> None:
                nonlocal written
                if i != written or frame.shape != frame_shape or frame.dtype != dtype:
                    raise AssertionError(f"frame {i} out of order or of shape {frame.shape} {frame.dtype}")
                fh.write(np.ascontiguousarray(frame).data)
                written += 1

            fill(put)
            if written != n:
                raise AssertionError(f"{written} of {n} frames written")
            fh.flush()
            os.fsync(fh.fileno())
        meta = _expected_meta(key, shape, dtype) | {"complete": True, "created": time.time()}
        (tmp / META_FILE).write_text(json.dumps(meta))
        fsync_path(tmp / META_FILE)
        fsync_path(tmp)
        os.rename(tmp, entry)
        fsync_path(cache_dir)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, (FileNotFoundError, PermissionError)):
            raise DataError(f"cannot write the frame cache in {cache_dir} ({e.strerror or e}): free disk space "
                            "or pass --cache-dir DIR on another disk") from None
        raise
