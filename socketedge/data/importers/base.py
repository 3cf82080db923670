"""What every dataset importer shares: the plan an importer builds, the split of classes into task-relevant and
task-irrelevant (TI), and the one writer that turns a plan into folders every command reads as they are.

Output layout (the same for every dataset; ``<m>`` is the target modality, depth or nir):

    OUT/import.json                                  what was imported from where, the split, counts, depth scales
    OUT/<domain>/source/<class>/<stem>.<ext>         labeled RGB of the task classes   (train-source --data)
    OUT/<domain>/target/<m>/<class>/<stem>.png       target images of the same scenes  (adapt --target, eval --data)
    OUT/ti/{rgb,<m>}/<ticlass>/<stem>.<ext>          task-irrelevant pairs             (adapt --ti)

TI pairs are pooled over all domains (the paper groups the remaining classes of every sensor into one TI set), so
they live once at the top; their stems carry the domain when there is more than one. Target labels are written
because the releases have them; adaptation never reads them, evaluation does.

RGB files already in a common format are copied byte for byte (no re-encoding); depth is written as 16-bit PNG in
the sensor's raw units with its scale (metres per unit) recorded in import.json; NIR as 8-bit PNG.
"""

from __future__ import annotations

import os
import random
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from socketedge.data.folders import require_dir
from socketedge.data.imageio import read_image, write_image
from socketedge.errors import ConfigError, DataError
from socketedge.utils.progress import make_progress

IMPORT_MANIFEST = "import.json"
IMPORT_FORMAT_VERSION = 1
TI_DIR = "ti"
COPY_AS_IS = (".jpg", ".jpeg", ".png")  # RGB files in these formats are copied, not re-encoded


@dataclass(frozen=True)
class PairSpec:
    """One RGB image and its target-modality partner in the release, with its class and a unique stem."""

    rgb: Path
    other: Path
    label: str
    stem: str


@dataclass
class DomainData:
    name: str  # sensor / subset, e.g. kv1
    pairs: list[PairSpec]
    depth_scale: float | None = None  # metres per raw unit of the written depth PNGs


@dataclass
class ClassSplit:
    task: list[str]
    ti: list[str]
    rule: str  # how the split was chosen, in words (goes into import.json and the printed report)


@dataclass
class ImportPlan:
    dataset: str
    root: Path
    modality: str  # target modality: depth | nir
    domains: list[DomainData]
    split: ClassSplit
    read_other: Callable[[Path], np.ndarray]  # release file → uint16 depth (raw units) or uint8 NIR
    options: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # dataset-specific facts for import.json (e.g. per-sensor counts)


@dataclass
class ImportReport:
    out: Path
    dataset: str
    modality: str
    task_classes: list[str]
    ti_classes: list[str]
    rule: str
    counts: dict[str, dict[str, int]]  # domain → class → pairs in the release (task and TI classes)
    written: dict[str, int]  # "<domain>/source", "<domain>/target", "ti" → images written
    depth_scale: dict[str, float]
    notes: list[str]


# ----------------------------------------------------------------------------------------------------------------
# class splits


def parse_names(value: str | Sequence[str] | None) -> list[str] | None:
    """``"a,b , c"`` or ``["a", "b"]`` → ``["a", "b", "c"]``; None/empty → None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [s.strip() for s in items if s and s.strip()]
    return names or None


def _check_known(names: list[str], known: Sequence[str], option: str, root: Path) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown class {unknown[0]!r} in {option}; classes in {root}: {', '.join(sorted(known))}")
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        raise ConfigError(f"class {dup[0]!r} is named twice in {option}")


def split_classes(classes: Sequence[str], root: Path, task: Sequence[str] | None = None,
                  ti: Sequence[str] | None = None, num_task: int | None = None, seed: int = 0) -> ClassSplit:
    """Task-relevant vs task-irrelevant classes: named (``task`` and/or ``ti``) or drawn by ``seed``.

    - ``task`` given: those are the task classes; TI = ``ti`` if given, else every other class.
    - only ``ti`` given: TI = those, task = every other class.
    - neither: ``num_task`` classes drawn with ``random.Random(seed)`` from the sorted class list, the rest TI.
    """
    classes = sorted(classes)
    if task:
        _check_known(list(task), classes, "--task-classes", root)
    if ti:
        _check_known(list(ti), classes, "--ti-classes", root)
    if task and ti:
        both = sorted(set(task) & set(ti))
        if both:
            raise ConfigError(f"class {both[0]!r} is both task-relevant and task-irrelevant; name it in one list")
        return ClassSplit(sorted(task), sorted(ti), "task and TI classes named by the user")
    if task:
        return ClassSplit(sorted(task), [c for c in classes if c not in task], "task classes named by the user; "
                          "every other class is task-irrelevant")
    if ti:
        return ClassSplit([c for c in classes if c not in ti], sorted(ti), "TI classes named by the user; "
                          "every other class is task-relevant")
    if num_task is None:
        raise ConfigError("say which classes are task-relevant: --task-classes, --ti-classes or --num-task with --seed")
    if not 2 <= num_task <= len(classes):
        raise ConfigError(f"--num-task {num_task} must be between 2 and the {len(classes)} classes found in {root}")
    chosen = sorted(random.Random(seed).sample(classes, num_task))
    return ClassSplit(chosen, [c for c in classes if c not in chosen],
                      f"{num_task} of the {len(classes)} classes drawn with seed {seed}; the rest task-irrelevant")


# ----------------------------------------------------------------------------------------------------------------
# writing


def _rgb_dest(src: Path, dest_dir: Path, stem: str) -> Path:
    ext = src.suffix.lower()
    return dest_dir / f"{stem}{ext if ext in COPY_AS_IS else '.png'}"


def _write_rgb(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.suffix == src.suffix.lower():
        read_image(src, "rgb")  # fail here, with the file named, on a corrupt release file
        shutil.copyfile(src, dest)
    else:
        write_image(dest, read_image(src, "rgb"))


def _jobs(plan: ImportPlan, stage: Path) -> tuple[list[tuple], dict[str, int]]:
    """(kind, src, dest) for every file to write, and how many images go into each output folder."""
    task, ti = set(plan.split.task), set(plan.split.ti)
    multi = len(plan.domains) > 1
    jobs, written, seen = [], Counter(), set()
    m = plan.modality
    for dom in plan.domains:
        for p in dom.pairs:
            if p.label in task:
                rgb_dir, other_dir = stage / dom.name / "source" / p.label, stage / dom.name / "target" / m / p.label
                stem, key = p.stem, f"{dom.name}/{p.label}/{p.stem}"
                written[f"{dom.name}/source"] += 1
                written[f"{dom.name}/target"] += 1
            elif p.label in ti:
                rgb_dir, other_dir = stage / TI_DIR / "rgb" / p.label, stage / TI_DIR / m / p.label
                stem = f"{dom.name}__{p.stem}" if multi else p.stem
                key = f"{TI_DIR}/{p.label}/{stem}"
                written[TI_DIR] += 1
            else:
                continue
            if key in seen:  # an importer must make stems unique; two files landing on one name would lose data
                raise DataError(f"two images of {plan.root} map to the same output name {key}; "
                                f"rename one of {p.rgb} and its twin")
            seen.add(key)
            jobs.append(("rgb", p.rgb, _rgb_dest(p.rgb, rgb_dir, stem)))
            jobs.append(("other", p.other, other_dir / f"{stem}.png"))
    return jobs, dict(written)


def _check_other(img: np.ndarray, modality: str, path: Path) -> np.ndarray:
    want = np.uint16 if modality == "depth" else np.uint8
    if img.ndim != 2 or img.dtype != want:
        raise DataError(f"{path}: expected a single-channel {np.dtype(want).name} {modality} image after import, "
                        f"got {img.dtype} {img.shape}")
    return img


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a directory")
    if out.is_dir() and any(out.iterdir()):
        if not (out / IMPORT_MANIFEST).is_file():
            raise DataError(f"--out {out} is not empty and holds no {IMPORT_MANIFEST}; choose a new directory")
        if not overwrite:
            raise DataError(f"--out {out} already holds an import; pass --overwrite to replace it")


def write_plan(plan: ImportPlan, out: Path, overwrite: bool = False, workers: int | None = None,
               show_progress: bool = True) -> ImportReport:
    """Write ``plan`` into ``out`` via a staging directory renamed into place at the end, so an interrupted
    import never leaves a half-written dataset that looks complete."""
    out = Path(out)
    _prepare_out(out, overwrite)
    if not plan.split.task:
        raise DataError(f"no task-relevant classes in {plan.root}; nothing to import")
    stage = out.parent / f".{out.name}.partial-{os.getpid()}"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        jobs, written = _jobs(plan, stage)

        def run(job: tuple) -> None:
            kind, src, dest = job
            if kind == "rgb":
                _write_rgb(src, dest)
            else:
                write_image(dest, _check_other(plan.read_other(src), plan.modality, src))

        workers = workers or max(1, min(8, os.cpu_count() or 1))
        pool = ThreadPoolExecutor(workers)  # OpenCV releases the GIL while decoding / encoding
        try:
            with make_progress(disable=not show_progress) as progress:
                task = progress.add_task(f"importing {plan.dataset}", total=len(jobs), terms="")
                for _ in pool.map(run, jobs):
                    progress.advance(task)
        finally:  # on an error or Ctrl-C, drop the queued conversions instead of finishing them
            pool.shutdown(wait=True, cancel_futures=True)
        # write_json_atomic lives beside the bundle format, whose module imports torch: import it only here
        from socketedge.models.bundle import write_json_atomic

        counts = {d.name: dict(sorted(Counter(p.label for p in d.pairs).items())) for d in plan.domains}
        depth_scale = {d.name: d.depth_scale for d in plan.domains if d.depth_scale is not None}
        write_json_atomic(stage / IMPORT_MANIFEST, _manifest(plan, counts, written, depth_scale))
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return ImportReport(out, plan.dataset, plan.modality, plan.split.task, plan.split.ti, plan.split.rule, counts,
                        written, depth_scale, plan.notes)


def _manifest(plan: ImportPlan, counts: dict, written: dict, depth_scale: dict) -> dict:
    task, ti, m = plan.split.task, plan.split.ti, plan.modality
    domains = {}
    for d in plan.domains:
        domains[d.name] = {
            "source": f"{d.name}/source",
            "target": f"{d.name}/target/{m}",
            "modality": m,
            "depth_scale": d.depth_scale,
            "task_counts": {c: counts[d.name].get(c, 0) for c in task},
            "ti_counts": {c: counts[d.name].get(c, 0) for c in ti if counts[d.name].get(c, 0)},
        }
    ti_counts = Counter()
    for d in plan.domains:
        for c in ti:
            ti_counts[c] += counts[d.name].get(c, 0)
    return {
        "format_version": IMPORT_FORMAT_VERSION,
        "kind": "import",
        "dataset": plan.dataset,
        "source_root": str(Path(plan.root).resolve()),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "modality": m,
        "split": {"task_classes": task, "ti_classes": ti, "rule": plan.split.rule},
        "domains": domains,
        "ti": {"path": TI_DIR, "modalities": ["rgb", m], "counts": dict(sorted(ti_counts.items())),
               # the TI set's own units (data/depth_units.py reads them): pooled over domains, so one scale
               **({"depth_scale": _ti_scale(plan)} if m == "depth" else {})},
        "depth_scale": depth_scale,
        "counts_in_release": counts,
        "written": written,
        "options": plan.options,
        "notes": plan.notes,
        **plan.extra,
    }


def _ti_scale(plan: ImportPlan) -> float | None:
    """The depth scale of the pooled TI pairs; an import whose domains differ in scale cannot pool them raw."""
    ti = set(plan.split.ti)
    scales = {d.depth_scale for d in plan.domains if any(p.label in ti for p in d.pairs)}
    if len(scales) > 1:
        raise DataError(f"{plan.root}: the TI pairs would pool depth of scales {sorted(map(str, scales))} m/unit in "
                        "one folder; import the domains separately")
    return scales.pop() if scales else None


def read_import(out: Path) -> dict:
    """The import.json of an imported dataset (used by benchmarks/reproduce.py)."""
    import json

    path = Path(out) / IMPORT_MANIFEST
    if not path.is_file():
        raise DataError(f"{out} is not an imported dataset (no {IMPORT_MANIFEST}); run `socketedge import` first")
    manifest = json.loads(path.read_text())
    if manifest.get("format_version", 0) > IMPORT_FORMAT_VERSION:
        raise DataError(f"{path} was written by a newer socketedge; upgrade")
    return manifest


# ----------------------------------------------------------------------------------------------------------------
# helpers for importers


def require_root(root: Path, what: str) -> Path:
    return require_dir(root, f"{what} root")


def read_depth_u16(path: Path) -> np.ndarray:
    """A depth PNG as released (uint16, single channel); anything else is a one-line DataError."""
    return read_image(path, "depth")


def read_nir_u8(path: Path) -> np.ndarray:
    return read_image(path, "nir")
