"""`socketedge sessions validate|info`: the integrity check of a capture session and its summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from socketedge.data.imageio import MODALITIES, is_image
from socketedge.data.session import FRAMES_FILE, Session, load_session
from socketedge.errors import DataError


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
