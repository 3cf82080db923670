"""The capture session format: its layout, its constants and its reader. `capture/recorder.py` writes sessions
with these records; `data/folders.py` reads them as data sets; `data/session_check.py` checks them.

A session is a directory::

    session.json     versioned manifest: sensor (model, serial, firmware, intrinsics of both streams,
                     depth↔colour extrinsics, depth scale), modalities, one entry per capture run;
                     rewritten atomically (temporary file + os.replace)
    frames.jsonl     one JSON line per completed frame, appended after the frame's files are in place:
                     {"id", "capture", "timestamp", "wall_time", "label", "files": {modality: path}, "meta"}
    rgb/[<label>/]<id>.png|jpg      8-bit colour
    depth/[<label>/]<id>.png        16-bit PNG in raw sensor units (× depth_scale = metres)
    nir/[<label>/]<id>.png          8-bit near-infrared

frames.jsonl is the source of truth for which frames exist, so a capture killed at any instant leaves a valid
session: every line names files that were completely written, and an incomplete last line (a write cut short)
is ignored by every reader. The layout mirrors a paired folder (<modality>/<class>/<stem>), and frames pair
across modalities by "<label>/<id>".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from socketedge.data.imageio import MODALITIES
from socketedge.errors import DataError

SESSION_MANIFEST = "session.json"
FORMAT = "socketedge-session"
FORMAT_VERSION = 1
FRAMES_FILE = "frames.jsonl"


@dataclass
class SessionFrame:
    id: int
    capture: int
    timestamp: float
    label: str | None
    files: dict[str, str]  # modality → path relative to the session root
    wall_time: float | None = None
    meta: dict = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return frame_stem(self.id)

    @property
    def key(self) -> str:
        return f"{self.label}/{self.stem}" if self.label else self.stem

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "capture": self.capture, "timestamp": self.timestamp,
                           "wall_time": self.wall_time, "label": self.label, "files": self.files,
                           "meta": self.meta}, separators=(",", ":"))


@dataclass
class Session:
    root: Path
    manifest: dict
    frames: list[SessionFrame]
    torn_tail: bool = False  # the last line of frames.jsonl was cut short (interrupted write) and is ignored
    bad_lines: list[int] = field(default_factory=list)  # 1-based numbers of unreadable lines before the tail

    @property
    def modalities(self) -> list[str]:
        present = {m for f in self.frames for m in f.files}
        declared = self.manifest.get("modalities") or []
        return [m for m in MODALITIES if m in present or (not self.frames and m in declared)]

    @property
    def sensor(self) -> dict:
        return self.manifest.get("sensor") or {}

    def labels(self, modality: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for f in self.frames:
            if modality is None or modality in f.files:
                name = f.label or "(unlabeled)"
                counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))


def frame_stem(frame_id: int) -> str:
    return f"{frame_id:06d}"


def is_session(root: Path) -> bool:
    return (Path(root) / SESSION_MANIFEST).is_file()


def read_manifest(root: Path) -> dict:
    path = Path(root) / SESSION_MANIFEST
    if not path.is_file():
        raise DataError(f"{root} is not a capture session (no {SESSION_MANIFEST}); capture one with "
                        f"`socketedge capture SOURCE --out {root}`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"session manifest {path} is unreadable ({e}); it is always replaced whole, so the "
                        f"file was changed outside socketedge: restore it from a backup") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path} is not a socketedge session manifest (format {manifest.get('format')!r})"
                        if isinstance(manifest, dict) else f"{path} is not a socketedge session manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataError(f"session {root} has format version {version}; this socketedge reads up to "
                        f"{FORMAT_VERSION}: upgrade socketedge")
    return manifest


def parse_frame_line(line: str) -> SessionFrame:
    d = json.loads(line)
    files = d["files"]
    if not isinstance(files, dict) or not files:
        raise ValueError("no files")
    return SessionFrame(id=int(d["id"]), capture=int(d.get("capture", 0)), timestamp=float(d.get("timestamp", 0.0)),
                        label=d.get("label") or None, files={str(k): str(v) for k, v in files.items()},
                        wall_time=d.get("wall_time"), meta=d.get("meta") or {})


def read_frames(path: Path) -> tuple[list[SessionFrame], bool, list[int]]:
    """(frames, torn_tail, bad_lines). An incomplete last line is what an interrupted append leaves: ignored."""
    if not path.is_file():
        return [], False, []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete_tail = raw.endswith(b"\n") or not raw
    frames, bad, torn = [], [], False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        last = i == len(lines) - 1
        try:
            frames.append(parse_frame_line(line.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            if last and not complete_tail:
                torn = True
            else:
                bad.append(i + 1)
    return frames, torn, bad


def load_session(root: Path) -> Session:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"session {root} does not exist")
    manifest = read_manifest(root)
    frames, torn, bad = read_frames(root / manifest.get("frames_file", FRAMES_FILE))
    return Session(root, manifest, frames, torn, bad)
