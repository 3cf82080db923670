"""The capture session format, and reading sessions wherever a paired or target folder is accepted.

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

from socketedge.data.folders import SESSION_MANIFEST, ImageItem, ImageSet, PairedSet, class_index, partner_modality
from socketedge.data.imageio import MODALITIES, is_image
from socketedge.errors import ConfigError, DataError

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


# ----------------------------------------------------------------------------------------------------------------
# Sessions as data sets (called by socketedge.data.folders for paired / target / labeled folders)


def _pick_modality(session: Session, modality: str | None, source: str = "rgb") -> str:
    present = session.modalities
    if modality is not None:
        if modality not in MODALITIES:
            raise ConfigError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
        if modality not in present:
            raise DataError(f"session {session.root} has no {modality} frames; it holds {', '.join(present) or 'none'}")
        return modality
    targets = [m for m in present if m != source]
    if len(targets) == 1:
        return targets[0]
    raise ConfigError(f"session {session.root} holds {', '.join(present) or 'no frames'}; pass --modality")


def _image_set(session: Session, frames: list[SessionFrame], modality: str, labels: str,
               class_names: list[str] | None) -> ImageSet:
    root = session.root
    if not frames:
        raise DataError(f"session {root} has no {modality} frames; capture some with `socketedge capture`")
    unlabeled = [f for f in frames if not f.label]
    if labels == "required" and unlabeled:
        raise DataError(f"session {root}: {len(unlabeled)} of {len(frames)} {modality} frames have no label "
                        f"(e.g. frame {unlabeled[0].id}); capture labeled frames with --label CLASS")
    if unlabeled:  # labels are used only when every frame has one
        return ImageSet(root, modality, [ImageItem(root / f.files[modality], f.stem) for f in frames], None)
    names, index = class_index({f.label for f in frames}, class_names, f"session {root}")
    items = [ImageItem(root / f.files[modality], f.key, index[f.label]) for f in frames]
    return ImageSet(root, modality, items, names)


def _sorted_frames(session: Session) -> list[SessionFrame]:
    return sorted(session.frames, key=lambda f: ((f.label or ""), f.id))


def session_images(root: Path, modality: str | None = None, labels: str = "optional",
                   class_names: list[str] | None = None, source: str = "rgb") -> ImageSet:
    """The ``modality`` images of a session; labels: 'required' (every frame labeled) or 'optional'. Unstated, the
    modality is the session's one that is not ``source`` (the source models' modality)."""
    session = load_session(root)
    modality = _pick_modality(session, modality, source)
    frames = [f for f in _sorted_frames(session) if modality in f.files]
    return _image_set(session, frames, modality, labels, class_names)


def session_pairs(root: Path, a: str = "rgb", b: str | None = None) -> PairedSet:
    """Frames holding both ``a`` and ``b`` images, paired by frame (never by list position)."""
    session = load_session(root)
    b = b or partner_modality(session.modalities, a, f"session {root}")
    for m in (a, b):
        _pick_modality(session, m)
    frames = [f for f in _sorted_frames(session) if a in f.files and b in f.files]
    if not frames:
        raise DataError(f"session {root} has no frame with both {a} and {b}; capture with --mode paired")
    sa = _image_set(session, frames, a, "optional", None)
    sb = _image_set(session, frames, b, "optional", None)
    return PairedSet(Path(root), (a, b), sa, sb)


# ----------------------------------------------------------------------------------------------------------------
# Integrity check behind `socketedge sessions validate`


@dataclass
class ValidationReport:
    root: Path
    frames: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    per_label: dict[str, int] = field(default_factory=dict)
    modalities: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _referenced_and_present(session: Session) -> tuple[set[str], list[Path], list[Path]]:
    referenced = {p for f in session.frames for p in f.files.values()}
    images, temporaries = [], []
    for m in MODALITIES:
        folder = session.root / m
        if folder.is_dir():
            for p in folder.rglob("*"):
                if p.is_file() and ".tmp" in p.name:
                    temporaries.append(p)
                elif p.is_file() and is_image(p):
                    images.append(p)
    return referenced, images, temporaries


def validate_session(root: Path, decode: bool = True, progress=None) -> ValidationReport:
    """Every manifest line readable, every file present and decodable in its modality (depth as 16-bit), every
    pair complete, no duplicate ids, and as many frames listed per finished capture as the manifest records (a
    truncated frames.jsonl is a loss, not a smaller valid session). Leftovers of an interrupted write are
    warnings, not errors."""
    from socketedge.data.imageio import read_image

    root = Path(root)
    report = ValidationReport(root)
    session = load_session(root)
    report.frames = len(session.frames)
    report.modalities = session.modalities
    report.per_label = session.labels()
    if session.torn_tail:
        report.warnings.append(f"{FRAMES_FILE}: the last line is incomplete (capture interrupted mid-write); "
                               f"that frame is ignored")
    for n in session.bad_lines:
        report.errors.append(f"{FRAMES_FILE} line {n} is not a valid frame record")
    seen: dict[int, int] = {}
    captures = {c.get("id", i): c for i, c in enumerate(session.manifest.get("captures", []))}
    for f in session.frames:
        if f.id in seen:
            report.errors.append(f"frame id {f.id} appears twice in {FRAMES_FILE}")
        seen[f.id] = 1
        capture = captures.get(f.capture, {})
        expected = capture.get("modalities") or []
        missing = [m for m in expected if m not in f.files]
        if missing:
            report.errors.append(f"frame {f.id} is incomplete: no {', '.join(missing)} "
                                 f"(capture {f.capture} records {', '.join(expected)})")
    listed: dict[int, int] = {}
    for f in session.frames:
        listed[f.capture] = listed.get(f.capture, 0) + 1
    for cid, c in captures.items():
        if not c.get("ended"):
            report.warnings.append(f"capture {c.get('id')} ({c.get('source')}) was interrupted; its completed "
                                   f"frames are kept")
            continue
        # a finished capture records how many frames it listed: fewer lines now means frames.jsonl lost records
        recorded, have = c.get("frames"), listed.get(cid, 0)
        if isinstance(recorded, int) and have < recorded:
            report.errors.append(f"capture {cid} recorded {recorded} frames but {FRAMES_FILE} lists {have}: "
                                 f"{recorded - have} frame record(s) lost ({FRAMES_FILE} truncated or edited); "
                                 "restore it from a backup")
        elif isinstance(recorded, int) and have > recorded:
            report.errors.append(f"capture {cid} recorded {recorded} frames but {FRAMES_FILE} lists {have} "
                                 f"({FRAMES_FILE} edited or appended to outside socketedge)")
    for cid in sorted(set(listed) - set(captures)):
        report.errors.append(f"{FRAMES_FILE} lists {listed[cid]} frame(s) of capture {cid}, which the manifest "
                             "does not record")
    referenced, images, temporaries = _referenced_and_present(session)
    for p in temporaries:
        report.warnings.append(f"{p.relative_to(root)} is a leftover of an interrupted write (safe to delete)")
    orphans = [p for p in images if str(p.relative_to(root)) not in referenced]
    if orphans:
        report.warnings.append(f"{len(orphans)} image(s) not listed in {FRAMES_FILE} (written just before an "
                               f"interruption), e.g. {orphans[0].relative_to(root)}; ignored")
    todo = [(f, m, rel) for f in session.frames for m, rel in f.files.items()]
    task = progress.add_task("validate", total=len(todo), terms="") if progress is not None else None
    shapes: dict[tuple[int, str], set] = {}
    for f, m, rel in todo:
        path = root / rel
        if not path.is_file():
            report.errors.append(f"frame {f.id}: {m} file {rel} is missing")
        elif decode:
            try:
                img = read_image(path, m)
                shapes.setdefault((f.capture, m), set()).add(img.shape)
            except DataError as e:
                report.errors.append(f"frame {f.id}: {e}")
        if task is not None:
            progress.advance(task)
    for (cap, m), s in shapes.items():
        if len(s) > 1:
            report.warnings.append(f"capture {cap}: {m} images have {len(s)} different sizes {sorted(s)}")
    return report


def session_info(root: Path) -> dict:
    """What `socketedge sessions info` prints."""
    session = load_session(root)
    m = session.manifest
    return {
        "root": str(session.root), "format_version": m.get("format_version"), "sensor": session.sensor.get("sensor"),
        "serial": session.sensor.get("serial"), "firmware": session.sensor.get("firmware"),
        "depth_scale": session.sensor.get("depth_scale"), "modalities": session.modalities,
        "frames": len(session.frames),
        "per_modality": {mod: sum(1 for f in session.frames if mod in f.files) for mod in session.modalities},
        "per_label": session.labels(),
        "per_label_modality": {label: {mod: sum(1 for f in session.frames
                                                if (f.label or "(unlabeled)") == label and mod in f.files)
                                       for mod in session.modalities} for label in session.labels()},
        "color_intrinsics": session.sensor.get("color_intrinsics"),
        "depth_intrinsics": session.sensor.get("depth_intrinsics"),
        "depth_to_color": session.sensor.get("depth_to_color"),
        "captures": [{k: c.get(k) for k in ("id", "source", "mode", "label", "started", "ended", "stopped_by")}
                     for c in m.get("captures", [])],
        "interrupted_tail": session.torn_tail,
    }
