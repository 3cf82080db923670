"""Writes capture sessions (format: data/session.py) so that any interruption leaves a valid session.

Per frame: each image is encoded in memory, written to a hidden temporary name, checked (every byte written,
fsynced) and renamed into place (os.replace is atomic), then one line is appended to frames.jsonl. A frame
therefore exists only once all its files do; Ctrl-C, SIGKILL, an unplugged camera or a full disk lose at most the
frames in flight (a failed write raises OSError from ``write``/``close``; nothing half-written is ever listed). The
manifest (session.json) is only ever replaced whole. Capturing into an existing session appends a new capture run
with fresh frame ids, above every id listed and every frame file on disk, so no existing file is overwritten.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from socketedge.capture.base import Frame, SensorInfo
from socketedge.data.imageio import MODALITIES, write_image
from socketedge.data.session import (
    FORMAT,
    FORMAT_VERSION,
    FRAMES_FILE,
    SESSION_MANIFEST,
    SessionFrame,
    frame_stem,
    is_session,
    read_frames,
    read_manifest,
)
from socketedge.errors import ConfigError, DataError
from socketedge.utils.atomic import write_json_atomic

MODES = ("paired", "target")
COLOR_FORMATS = ("png", "jpg")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def check_label(label: str | None) -> str | None:
    if label is None or label == "":
        return None
    if not _LABEL.match(label):
        raise ConfigError(f"label {label!r} cannot be a folder name; use letters, digits, '_', '-', '.', '+' "
                          f"(e.g. --label coffee_mug)")
    return label


def session_modalities(available: tuple[str, ...] | list[str], mode: str, target: str | None = None) -> list[str]:
    """Which images a frame of this capture stores: paired → colour + every target modality; target → one."""
    if mode not in MODES:
        raise ConfigError(f"unknown capture mode {mode!r}; expected one of {', '.join(MODES)}")
    targets = [m for m in available if m != "rgb" and m in MODALITIES]
    if target is not None and target not in targets:
        raise ConfigError(f"the source gives {', '.join(available)}; it has no {target} stream")
    if mode == "paired":
        if "rgb" not in available or not targets:
            raise ConfigError(f"--mode paired needs colour and a depth/nir stream; the source gives "
                              f"{', '.join(available)}: use --mode target")
        return ["rgb"] + ([target] if target else targets)
    if not targets:
        raise ConfigError(f"--mode target needs a depth/nir/thermal stream; the source gives {', '.join(available)}")
    return [target or ("depth" if "depth" in targets else targets[0])]


def write_error_message(error: OSError, root: Path) -> str:
    """One line for a failed write during capture (disk full, permissions, a removed drive)."""
    what = error.strerror or str(error)
    return f"cannot write to {root}: {what}"


def _write_manifest(root: Path, manifest: dict) -> None:
    manifest["updated"] = now_iso()
    write_json_atomic(root / SESSION_MANIFEST, manifest)


def _ids_on_disk(root: Path) -> int:
    """The highest frame id any image file in the session's modality folders is named after (-1: none).
    Files a damaged frames.jsonl no longer lists still count, so a new capture never overwrites them."""
    top = -1
    for m in MODALITIES:
        folder = root / m
        if folder.is_dir():
            for p in folder.rglob("*"):
                stem = p.name.lstrip(".").split(".")[0]
                if stem.isdigit():
                    top = max(top, int(stem))
    return top


def _repair_tail(path: Path) -> None:
    """Cut an incomplete last line (left by a write interrupted mid-line) so the next append starts clean."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


class SessionWriter:
    """Context manager: ``with SessionWriter(out, info, uri, mode="paired") as w: w.write(frame, label)``."""

    def __init__(self, root: Path, sensor: SensorInfo, source: str, mode: str = "paired", label: str | None = None,
                 target: str | None = None, color_format: str = "png", settings: dict | None = None,
                 workers: int | None = None):
        if color_format not in COLOR_FORMATS:
            raise ConfigError(f"colour format {color_format!r} is not supported; expected {', '.join(COLOR_FORMATS)}")
        self.root = Path(root)
        self.sensor = sensor
        self.source = source
        self.mode = mode
        self.label = check_label(label)
        self.modalities = session_modalities(sensor.modalities, mode, target)
        self.color_format = color_format
        self.settings = settings or {}
        self.written = 0  # frames listed in frames.jsonl (complete on disk)
        self.workers = min(4, os.cpu_count() or 1) if workers is None else workers
        self._fh = None
        self._pool = None
        self._pending: deque = deque()  # (future, record) in id order, waiting to be listed
        self.failed: OSError | None = None  # the write error that ended this capture

    # lifecycle ----------------------------------------------------------------------------------------------
    def __enter__(self) -> "SessionWriter":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        stopped = "end" if exc_type is None else ("interrupted" if exc_type is KeyboardInterrupt else "error")
        self.close(stopped_by=stopped, error=None if exc is None else str(exc).splitlines()[0] if str(exc) else None)

    def open(self) -> None:
        root = self.root
        if root.exists() and not root.is_dir():
            raise DataError(f"--out {root} is a file; give a directory for the session")
        frames_path = root / FRAMES_FILE
        if is_session(root):
            manifest = read_manifest(root)
            _repair_tail(frames_path)
            frames, _, _ = read_frames(frames_path)
            self.next_id = max(max((f.id for f in frames), default=-1), _ids_on_disk(root)) + 1
        elif root.exists() and any(p for p in root.iterdir() if not p.name.startswith(".")):
            raise DataError(f"--out {root} exists and is not a capture session; choose a new or empty directory")
        else:
            root.mkdir(parents=True, exist_ok=True)
            manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": now_iso(),
                        "frames_file": FRAMES_FILE, "sensor": self.sensor.to_dict(), "modalities": [],
                        "captures": []}
            self.next_id = 0
        captures = manifest.setdefault("captures", [])
        self.capture = {"id": len(captures), "source": self.source, "mode": self.mode, "label": self.label,
                        "modalities": self.modalities, "color_format": self.color_format, "started": now_iso(),
                        "ended": None, "frames": 0, "stopped_by": None, "sensor": self.sensor.to_dict(),
                        "settings": self.settings}
        captures.append(self.capture)
        manifest["modalities"] = [m for m in MODALITIES if m in set(manifest.get("modalities", [])) | set(self.modalities)]
        self.manifest = manifest
        _write_manifest(root, manifest)
        # unbuffered: a record is either wholly in the file or (after a failed write, cut back) not at all
        self._fh = open(frames_path, "ab", buffering=0)  # noqa: SIM115 - stays open for the capture, see close()
        if self.workers > 0:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="session-writer")

    def close(self, stopped_by: str = "end", error: str | None = None) -> OSError | None:
        """List the frames still being written, close frames.jsonl and record the capture's end in the manifest.
        Returns the OSError (disk full, …) that stopped a frame from being written, if one did; the session then
        holds every frame completed before it and a manifest saying why it stopped."""
        if self._fh is None:
            return self.failed
        try:
            self._flush(limit=0)  # frames already encoding are finished and listed, even after Ctrl-C
        except OSError:
            pass  # recorded in self.failed; the frames listed before it stay
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
            self._fh.close()
            self._fh = None
        if self.failed is not None:
            stopped_by = "write_error"
            error = error or write_error_message(self.failed, self.root)
        self.capture.update(ended=now_iso(), frames=self.written, stopped_by=stopped_by)
        if error:
            self.capture["error"] = error
        try:
            _write_manifest(self.root, self.manifest)
        except OSError as e:
            if self.failed is None:
                raise
            # the disk is still full: session.json keeps its previous (valid) version, which marks this capture
            # as interrupted; frames.jsonl lists every completed frame
            del e
        return self.failed

    # frames ---------------------------------------------------------------------------------------------------
    def _relpath(self, modality: str, stem: str, label: str | None) -> str:
        ext = self.color_format if modality == "rgb" else "png"
        return f"{modality}/{label}/{stem}.{ext}" if label else f"{modality}/{stem}.{ext}"

    def write(self, frame: Frame, label: str | None = None) -> SessionFrame:
        """Queue a frame: its images are encoded on the writer threads (OpenCV releases the GIL) and its line is
        appended to frames.jsonl, in id order, once every one of its files is in place."""
        if self._fh is None:
            raise RuntimeError("SessionWriter.write() outside its context")
        if self.failed is not None:
            raise self.failed
        label = check_label(label) if label is not None else (self.label or frame.label)
        frame_id = self.next_id
        stem = frame_stem(frame_id)
        jobs = []
        for m in self.modalities:
            image = frame.image(m)
            if image is None:
                raise DataError(f"frame {frame.index} from {self.source} has no {m} image; every frame of a "
                                f"{self.mode} capture needs {', '.join(self.modalities)}")
            if m == "depth" and image.dtype != np.uint16:
                raise DataError(f"frame {frame.index}: depth is {image.dtype}; expected uint16 raw sensor units")
            jobs.append((m, self._relpath(m, stem, label), np.array(image, copy=True)))  # sources may reuse buffers
        meta = {k: v for k, v in frame.meta.items() if isinstance(v, (int, float, str, bool)) or v is None}
        record = SessionFrame(id=frame_id, capture=self.capture["id"], timestamp=float(frame.timestamp),
                              label=label, files={m: rel for m, rel, _ in jobs}, wall_time=time.time(), meta=meta)
        self.next_id += 1
        if self._pool is None:
            try:
                self._write_files(jobs)
            except OSError as e:
                self.failed = e
                raise
            self._list(record)
            return record
        self._pending.append((self._pool.submit(self._write_files, jobs), record))
        self._flush(limit=2 * self.workers)  # bounded memory: beyond that, wait for the oldest
        return record

    def _write_files(self, jobs) -> None:
        done = []
        try:
            for _, rel, image in jobs:
                write_image(self.root / rel, image, durable=True)
                done.append(self.root / rel)
        except BaseException:
            for path in done:  # a frame is all its files or none: free the space for the manifest
                path.unlink(missing_ok=True)
            raise

    def _list(self, record: SessionFrame) -> None:
        line = (record.to_json() + "\n").encode("utf-8")
        start = self._fh.tell()
        try:
            written = self._fh.write(line)  # unbuffered: in the kernel at once, survives the process being killed
            if written != len(line):
                raise OSError(28, "No space left on device", str(self.root / FRAMES_FILE))
        except OSError as e:
            self._fh.truncate(start)  # never leave half a record behind
            self._abandon(record)
            self.failed = e
            raise
        self.written += 1

    def _abandon(self, *records: SessionFrame) -> None:
        """Remove the files of frames that will not be listed (after a write error), and of those in flight."""
        pending = list(self._pending)
        self._pending.clear()
        for future, _ in pending:
            try:
                future.result()
            except Exception:  # noqa: BLE001 - their own error is the same full disk; files removed below
                pass
        for record in [*records, *(r for _, r in pending)]:
            for rel in record.files.values():
                (self.root / rel).unlink(missing_ok=True)

    def _flush(self, limit: int) -> None:
        """List finished frames in id order, waiting for the oldest while more than ``limit`` are in flight."""
        while self._pending:
            future, record = self._pending[0]
            if not future.done() and len(self._pending) <= limit:
                return
            try:
                future.result()  # waits; a failed write (disk full, …) raises here
            except OSError as e:
                self._pending.popleft()
                self._abandon(record)
                self.failed = e
                raise
            self._pending.popleft()
            self._list(record)
