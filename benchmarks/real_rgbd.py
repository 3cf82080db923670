"""RGB → depth on real labeled Kinect v1 frames (NTU-Microsoft Kinect hand gestures): unadapted, SHOT, SOCKET.

    python benchmarks/real_rgbd.py [--root ../shared/data/ntu_kinect_gesture] [--work /tmp/socketedge-real-rgbd]
        [--archs efficientnet_lite0,resnet18] [--seeds 0,1,2] [--split takes|subjects] [--size 80]
        [--source-epochs 10] [--adapt-epochs 15] [--ti-per-class 100] [--depth-range 0.5,3.0] [--table8] [--table9]
        [--fresh]
    python benchmarks/real_rgbd.py --quick          # tiny end-to-end check (1 seed, 1 arch, 64 px, 2+1 epochs)

Cost on 2 CPU cores, measured while other jobs shared them (load average 3–6; this job got ~0.7 core), so upper
bounds: one efficientnet_lite0 seed at 80 px took 11.6 min (source 394 s, unadapted 8 s, SHOT 137 s, SOCKET
153 s); at 96 px 23.5 min for efficientnet_lite0 (378 / 15 / 356 / 654 s) and 16.4 min for resnet18 (333 / 11 /
268 / 375 s) — those at 5–6 adaptation epochs. At the default 15 epochs with paired TI crops, one Lite0 seed at
80 px took SHOT 287–350 s and SOCKET 1113–1131 s while three other jobs shared the cores (~250 s alone); the
default run (2 backbones × 3 seeds at 80 px) is estimated at about 60 min on two idle cores.
``--table8`` adds 4 adaptation cells per seed and ``--table9`` 7 (the λ = 0 and 0.3 rows, the 100-pair row and
two Table 8 rows are cells of the main table): 4 for the λ row and 3 for the pairs row, ``--table9-rows`` picks
one.

Data: 1000 frames (640×480 colour JPEG + 16-bit depth PNG in mm), 10 gestures G1–G10 × 10 subjects P1–P10 ×
10 takes; colour and depth are not registered (raw Kinect v1).

Protocol:

1. Hand crop, the same box in both modalities. The hand is the nearest large object in the depth frame: valid
   depth (> 0), its 0.5th percentile = the near level; pixels within 120 mm of it, opened (3×3), split into
   8-connected blobs; of the blobs of ≥ 300 px the one with the smallest median depth; its "core" (pixels within
   100 mm of the blob's own 2nd percentile: the hand, not the forearm behind it) gives the centre. The box is a
   220 px square (at 640×480) centred there, shifted 16 px right (half the ~32 px median horizontal offset of the
   colour image relative to depth, measured by edge correlation, so the hand sits equally off-centre in both),
   clamped inside the frame, and cut from both frames. Crops are written once into WORK/crops (colour JPEG q95,
   depth 16-bit PNG in unchanged millimetres) with WORK/crops/contact_sheet.png to check them by eye.
2. Split per seed: the 10 gestures are shuffled (random.Random(seed)) into 5 task and 5 task-irrelevant (TI)
   classes. ``--split`` divides the task-class frames: ``takes`` (default) = takes 1–5 of every subject for
   the source, takes 6–10 for the target; ``subjects`` = P1–P5 for the source, P6–P10 for the target. Source =
   the colour crops of its frames (250, SHOT source recipe, 90/10 train/val). Target = the depth crops of the
   other frames (250): adaptation sees them without labels (class folders only let it log accuracy), and
   accuracy is measured on the same images. TI pairs = colour + depth crops of the 5 TI gestures, all subjects
   and takes, ``--ti-per-class`` per class (a seeded subset, nested: 10 ⊂ 25 ⊂ 50 ⊂ 100). The source's
   accuracy on the target frames' *colour* crops is shown as a reference (the same images in the source's own
   modality).
3. Methods per seed and backbone: unadapted (the source checkpoint on the target depth), SHOT, SOCKET (the
   library's default λs), each scored with ``socketedge.evaluate.evaluate`` on the target depth folder. Depth
   preprocessing ``--depth-range`` (metres) is passed to adaptation and evaluation alike.
4. Backbones: efficientnet_lite0 from its packaged ImageNet weights, resnet18 from scratch.
5. Cells: mean ± sample std over seeds, and each seed; SOCKET − SHOT per seed.
6. ``--table8``: Table 8 of the paper (L_ma = ent + div + λ_pl·pl, with L_d and L_TI added one at a time) plus two
   rows the paper does not have (no pseudo-label term). ``--table9``: λ_TI = λ_d sweep and TI pairs per class
   sweep. Both on ``--ablation-arch`` over the seeds.

Every finished cell is cached in WORK/results.json, keyed by every setting that defines it (backbone, seed,
sizes, epochs, crop, split, the resolved AdaptConfig), so a re-run reuses finished cells (``--fresh`` ignores
them). The tables are printed as markdown at the end and written to OUT.md and OUT.json (``--out``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "ntu_kinect_gesture"
GESTURES = [f"G{k}" for k in range(1, 11)]
SOURCE_SUBJECTS = {f"P{s}" for s in range(1, 6)}
TARGET_SUBJECTS = {f"P{s}" for s in range(6, 11)}
N_TASK = 5
ARCH_PRETRAINED = {"efficientnet_lite0": True, "resnet18": False}
SPLITS = {"takes": "source takes 1-5 rgb (all subjects), target takes 6-10 depth",
          "subjects": "source P1-P5 rgb, target P6-P10 depth"}
TABLE8_ROWS = [  # (row, method, AdaptConfig overrides, in the paper)
    ("L_ma (= SHOT)", "shot", {}, True),
    ("L_ma + L_d", "socket", {"lambda_ti": 0.0}, True),
    ("L_ma + L_TI", "socket", {"lambda_d": 0.0}, True),
    ("L_ma + L_d + L_TI (= SOCKET)", "socket", {}, True),
    ("L_IM only (SHOT without L_pl)", "shot", {"lambda_pl": 0.0}, False),
    ("L_IM + L_d + L_TI (SOCKET without L_pl)", "socket", {"lambda_pl": 0.0}, False),
]
LAMBDA_SWEEP = (0.0, 0.05, 0.1, 0.3, 0.5, 1.0)
TI_SWEEP = (0, 10, 25, 50, 100)  # 0 = no TI pairs = SHOT


# ---------------------------------------------------------------------------------------------- hand crop
def hand_box(depth: np.ndarray, side: int = 220, band_mm: float = 120.0, near_percentile: float = 0.5,
             core_mm: float = 100.0, min_area: int = 300, shift: tuple[int, int] = (16, 0)
             ) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a ``side``-pixel square around the nearest large object of a depth frame (0 = no
    reading), shifted by ``shift`` and clamped inside the frame."""
    h, w = depth.shape
    side = min(side, h, w)
    valid = depth > 0
    cx, cy = w / 2, h / 2
    if valid.any():
        near = np.percentile(depth[valid], near_percentile)
        band = valid & (depth <= near + band_mm)
        mask = cv2.morphologyEx(band.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n > 1:
            areas = stats[1:, cv2.CC_STAT_AREA]
            candidates = [i + 1 for i in range(n - 1) if areas[i] >= min_area] or [1 + int(np.argmax(areas))]
            blob = labels == min(candidates, key=lambda i: float(np.median(depth[labels == i])))
            core = blob & (depth <= np.percentile(depth[blob], 2) + core_mm)
        else:  # only speckle: the whole near band
            core = band
        ys, xs = np.nonzero(core)
        cx, cy = float(xs.mean()), float(ys.mean())
    x0 = int(round(min(max(cx + shift[0] - side / 2, 0), w - side)))
    y0 = int(round(min(max(cy + shift[1] - side / 2, 0), h - side)))
    return x0, y0, x0 + side, y0 + side


CROP = {"side": 220, "band_mm": 120.0, "near_percentile": 0.5, "core_mm": 100.0, "min_area": 300, "shift": [16, 0]}


def make_crops(root: Path, crops: Path, log) -> dict[str, list[int]]:
    """Crop every frame of ``root`` into ``crops``/{rgb,depth}/G<k>/<stem>; cached (boxes.json lists the boxes)."""
    manifest = crops / "boxes.json"
    if manifest.is_file():
        saved = json.loads(manifest.read_text())
        if saved.get("params") == CROP and saved.get("root") == str(root.resolve()):
            if not (crops / "contact_sheet.png").is_file():
                contact_sheet(crops, sorted(saved["boxes"]), crops / "contact_sheet.png")
            return saved["boxes"]
    shutil.rmtree(crops, ignore_errors=True)
    t0 = time.perf_counter()
    boxes = {}
    for depth_path in sorted((root / "depth").glob("G*/*.png")):
        g, stem = depth_path.parent.name, depth_path.stem
        rgb_path = root / "rgb" / g / f"{stem}.jpg"
        depth = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
        rgb = cv2.imread(str(rgb_path), cv2.IMREAD_COLOR)
        if depth is None or rgb is None or depth.dtype != np.uint16:
            raise SystemExit(f"cannot read the pair {depth_path} / {rgb_path} (16-bit depth PNG + colour JPEG)")
        x0, y0, x1, y1 = hand_box(depth, CROP["side"], CROP["band_mm"], CROP["near_percentile"], CROP["core_mm"],
                                  CROP["min_area"], tuple(CROP["shift"]))
        for modality, image, ext, flags in (("rgb", rgb, "jpg", [cv2.IMWRITE_JPEG_QUALITY, 95]),
                                            ("depth", depth, "png", [])):
            out = crops / modality / g / f"{stem}.{ext}"
            out.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(out), np.ascontiguousarray(image[y0:y1, x0:x1]), flags):
                raise SystemExit(f"cannot write {out}")
        boxes[f"{g}/{stem}"] = [x0, y0, x1, y1]
    if not boxes:
        raise SystemExit(f"{root} has no depth/G*/*.png frames; pass --root (the ntu_kinect_gesture folder)")
    contact_sheet(crops, sorted(boxes), crops / "contact_sheet.png")
    manifest.write_text(json.dumps({"root": str(root.resolve()), "params": CROP, "boxes": boxes}, indent=1))
    log(f"cropped {len(boxes)} frame pairs into {crops} ({time.perf_counter() - t0:.0f} s); "
        f"check {crops / 'contact_sheet.png'}")
    return boxes


def depth_view(depth: np.ndarray, near_mm: float = 600.0, far_mm: float = 2000.0) -> np.ndarray:
    v = np.clip((depth.astype(np.float32) - near_mm) / (far_mm - near_mm), 0, 1)
    view = cv2.applyColorMap((255 * (1 - v)).astype(np.uint8), cv2.COLORMAP_TURBO)  # near = red, far = blue
    view[depth == 0] = 0
    return view


def contact_sheet(crops: Path, keys: list[str], out: Path, n: int = 40, cols: int = 5, tile: int = 110) -> None:
    """A grid of seeded random crops, each as colour | depth side by side."""
    picks = sorted(random.Random(0).sample(keys, min(n, len(keys))))
    cells = []
    for key in picks:
        rgb = cv2.imread(str(crops / "rgb" / f"{key}.jpg"), cv2.IMREAD_COLOR)
        depth = cv2.imread(str(crops / "depth" / f"{key}.png"), cv2.IMREAD_UNCHANGED)
        pair = np.concatenate([cv2.resize(rgb, (tile, tile), interpolation=cv2.INTER_AREA),
                               cv2.resize(depth_view(depth), (tile, tile), interpolation=cv2.INTER_NEAREST)], 1)
        cv2.putText(pair, key.split("/")[1], (2, 12), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 255, 255), 1)
        cells.append(np.pad(pair, ((2, 2), (2, 2), (0, 0)), constant_values=255))
    while len(cells) % cols:
        cells.append(np.full_like(cells[0], 255))
    rows = [np.concatenate(cells[i:i + cols], 1) for i in range(0, len(cells), cols)]
    cv2.imwrite(str(out), np.concatenate(rows, 0))


# ---------------------------------------------------------------------------------------------- split
def split_classes(seed: int) -> tuple[list[str], list[str]]:
    order = list(GESTURES)
    random.Random(seed).shuffle(order)
    return sorted(order[:N_TASK], key=GESTURES.index), sorted(order[N_TASK:], key=GESTURES.index)


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.is_symlink():
        os.symlink(src.resolve(), dst)


def _subject(key: str) -> str:
    return key.split("/")[1].split("_")[0]


def _take(key: str) -> int:
    return int(key.split("/")[1].split("_")[2])


def is_source_frame(key: str, split: str) -> bool:
    """Which task-class frames train the RGB source (the rest are the depth target): ``takes`` = takes 1–5 of
    every subject (target: takes 6–10), ``subjects`` = subjects P1–P5 (target: P6–P10)."""
    return _take(key) <= 5 if split == "takes" else _subject(key) in SOURCE_SUBJECTS


def build_split(crops: Path, keys: list[str], seed_dir: Path, seed: int, ti_counts: list[int],
                split: str = "takes") -> dict:
    """Symlink folders for one seed: src_rgb/, ref_rgb/ (the target frames' colour), target/depth/,
    ti<N>/{rgb,depth}/."""
    task, ti = split_classes(seed)
    by_class = {g: [k for k in keys if k.startswith(g + "/")] for g in GESTURES}
    for g in task:
        for k in by_class[g]:
            stem = k.split("/")[1]
            if is_source_frame(k, split):
                _link(crops / "rgb" / f"{k}.jpg", seed_dir / "src_rgb" / g / f"{stem}.jpg")
            else:
                _link(crops / "rgb" / f"{k}.jpg", seed_dir / "ref_rgb" / g / f"{stem}.jpg")
                _link(crops / "depth" / f"{k}.png", seed_dir / "target" / "depth" / g / f"{stem}.png")
    ti_dirs = {}
    for count in ti_counts:
        if count <= 0:
            continue
        folder = seed_dir / f"ti{count}"
        for g in ti:
            rng = random.Random(f"{seed}-{g}")  # one permutation per class: smaller subsets nest in larger ones
            order = sorted(by_class[g])
            rng.shuffle(order)
            for k in order[:count]:
                stem = k.split("/")[1]
                _link(crops / "rgb" / f"{k}.jpg", folder / "rgb" / g / f"{stem}.jpg")
                _link(crops / "depth" / f"{k}.png", folder / "depth" / g / f"{stem}.png")
        ti_dirs[count] = folder
    return {"task": task, "ti": ti, "src": seed_dir / "src_rgb", "ref": seed_dir / "ref_rgb",
            "target": seed_dir / "target" / "depth", "ti_dirs": ti_dirs}


# ---------------------------------------------------------------------------------------------- cells
class Runner:
    """Trains sources, adapts and evaluates, each cell read back from WORK/results.json when already done."""

    def __init__(self, args: argparse.Namespace, work: Path, crops: Path, keys: list[str]):
        self.args, self.work, self.crops, self.keys = args, work, crops, keys
        self.results_path = work / "results.json"
        self.results = {}
        if self.results_path.is_file() and not args.fresh:
            self.results = json.loads(self.results_path.read_text())
        self.splits: dict[int, dict] = {}
        self.fresh_done: set[str] = set()  # with --fresh: cells (and sources) redone in this run

    def log(self, text: str) -> None:
        print(text, flush=True)

    def _save(self) -> None:
        tmp = self.results_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.results, indent=1, sort_keys=True))
        tmp.replace(self.results_path)

    def split(self, seed: int) -> dict:
        if seed not in self.splits:
            counts = sorted({self.args.ti_per_class, *(TI_SWEEP if self.args.table9 else ())})
            self.splits[seed] = build_split(self.crops, self.keys, self.work / f"{self.args.split}-seed{seed}", seed,
                                            counts, self.args.split)
        return self.splits[seed]

    def _base(self, arch: str, seed: int) -> dict:
        a = self.args
        return {"data": "ntu_kinect_gesture", "crop": CROP,
                "split": "5 task / 5 TI gestures by seed; " + SPLITS[a.split], "arch": arch,
                "pretrained": ARCH_PRETRAINED.get(arch, False),
                "size": a.size, "source_epochs": a.source_epochs, "source_min_steps": a.source_min_steps,
                "seed": seed}

    def _cached(self, key: str) -> dict | None:
        return self.results.get(key) if (not self.args.fresh or key in self.fresh_done) else None

    def _store(self, key: str, record: dict) -> dict:
        self.results[key] = record
        self.fresh_done.add(key)
        self._save()
        return record

    def source(self, arch: str, seed: int) -> tuple[Path, dict]:
        from socketedge.models.train import TrainSourceConfig, train_source

        settings = self._base(arch, seed)
        key = "source " + json.dumps(settings, sort_keys=True)
        path = self.work / "sources" / f"{arch}-{_digest(key)}.ckpt"
        record = self._cached(key)
        if record is not None and path.is_file():
            return path, record
        sp = self.split(seed)
        t0 = time.perf_counter()
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {}
        if "min_steps" in TrainSourceConfig.model_fields:  # run --source-epochs as given, not stretched
            extra["min_steps"] = self.args.source_min_steps
        cfg = TrainSourceConfig(data=sp["src"], out=path, arch=arch, pretrained=settings["pretrained"],
                                epochs=self.args.source_epochs, input_size=self.args.size, seed=seed,
                                device=self.args.device, show_progress=False, **extra)
        from socketedge.evaluate import evaluate

        with library_output(self.args.verbose):
            written, info = train_source(cfg)
            ref = evaluate([Path(written)], sp["ref"], modality="rgb", device=self.args.device, show_progress=False)
        kept = info.get("kept", "best")  # the library keeps the best-validation or the final epoch's weights
        record = {"val_accuracy": info["best" if kept == "best" else "final"]["val_accuracy"], "kept": kept,
                  "schedule": info.get("schedule"),
                  "rgb_reference_accuracy": ref["accuracy"], "num_train": info["num_train"],
                  "task_classes": sp["task"], "ti_classes": sp["ti"], "seconds": time.perf_counter() - t0}
        self.log(f"[{_clock()}] source {arch} seed {seed}: val {record['val_accuracy']:.1f}%, RGB target frames "
                 f"{record['rgb_reference_accuracy']:.1f}% ({record['seconds']:.0f} s)")
        return Path(written), self._store(key, record)

    def cell(self, arch: str, seed: int, method: str, overrides: dict | None = None,
             ti_per_class: int | None = None) -> dict:
        """Accuracy (%) on the target depth of one method: 'unadapted', 'shot' or 'socket' (+ AdaptConfig
        overrides)."""
        from socketedge.adapt.config import AdaptConfig

        a = self.args
        overrides = dict(overrides or {})
        ti_n = a.ti_per_class if ti_per_class is None else ti_per_class
        if method == "socket" and ti_n == 0:  # no TI pairs: λ_TI has nothing to act on
            overrides["lambda_ti"] = 0.0
        src, _ = self.source(arch, seed)
        sp = self.split(seed)
        settings = self._base(arch, seed) | {"depth_range": list(a.depth_range_t)}
        if method == "unadapted":
            settings["method"] = "unadapted"
            cfg = None
        else:
            default_ti = AdaptConfig.model_fields["lambda_ti"].default
            uses_ti = method == "socket" and overrides.get("lambda_ti", default_ti) > 0
            cfg = AdaptConfig(sources=[src], target=sp["target"], out=self.work / "bundles" / "pending",
                              ti=sp["ti_dirs"][ti_n] if uses_ti else None, method=method, epochs=a.adapt_epochs,
                              seed=seed, device=a.device, depth_range=a.depth_range_t, show_progress=False,
                              **overrides)
            resolved = cfg.effective().model_dump(mode="json", exclude={"sources", "target", "out", "ti", "labels",
                                                                        "gap_pairs", "show_progress", "resume",
                                                                        "device"})
            settings |= {"adapt": resolved, "ti_per_class": ti_n if uses_ti else None}
        key = "cell " + json.dumps(settings, sort_keys=True)
        record = self._cached(key)
        if record is not None:
            return record
        t0 = time.perf_counter()
        with library_output(a.verbose):
            record = self._run_cell(cfg, key, arch, seed, method, src, sp)
        record |= {"accuracy": record.pop("metrics")["accuracy"], "seconds": time.perf_counter() - t0,
                   "method": method, "overrides": overrides, "ti_per_class": settings.get("ti_per_class")}
        what = method + "".join(f" {k}={v}" for k, v in overrides.items())
        if settings.get("ti_per_class"):
            what += f" ti/class={ti_n}"
        self.log(f"[{_clock()}] {arch} seed {seed} {what}: {record['accuracy']:.1f}% ({record['seconds']:.0f} s)")
        return self._store(key, record)

    def _run_cell(self, cfg, key: str, arch: str, seed: int, method: str, src: Path, sp: dict) -> dict:
        from socketedge.adapt.run import RESUME_FILE, adapt
        from socketedge.evaluate import evaluate
        from socketedge.models.bundle import is_bundle

        a = self.args
        if cfg is None:
            metrics = evaluate([src], sp["target"], modality="depth", device=a.device,
                               depth_range=a.depth_range_t, show_progress=False)
            record = {}
        else:
            out = self.work / "bundles" / f"{arch}-seed{seed}-{method}-{_digest(key)}"
            resume = (out / RESUME_FILE).is_file()
            if a.fresh and key not in self.fresh_done:
                shutil.rmtree(out, ignore_errors=True)
                resume = False
            if not is_bundle(out) or resume:
                if not resume:
                    shutil.rmtree(out, ignore_errors=True)  # a run killed before its first checkpoint
                result = adapt(cfg.model_copy(update={"out": out, "resume": resume}))
                final = result.metrics.get("final", {})
            else:
                final = json.loads((out / "metrics.json").read_text()).get("final", {})
            metrics = evaluate([out], sp["target"], modality="depth", device=a.device,
                               depth_range=a.depth_range_t, show_progress=False)
            record = {"bundle": str(out), "zeta": final.get("zeta"), "pl_accuracy": final.get("pl_accuracy"),
                      "adapt_target_accuracy": final.get("target_accuracy")}  # adapt's own report, same images
        return record | {"metrics": metrics, "n": metrics["n"]}


_T0 = time.perf_counter()


@contextmanager
def library_output(verbose: bool):
    """Silence the library's console (adapt prints one line per epoch even with show_progress=False) unless
    ``verbose``; exceptions still propagate."""
    from socketedge.utils.progress import console

    quiet = console.quiet
    console.quiet = not verbose
    try:
        yield
    finally:
        console.quiet = quiet


def _clock() -> str:
    s = int(time.perf_counter() - _T0)
    return f"{s // 60:3d}:{s % 60:02d}"


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------------------------- tables
def _stats(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:  # no sample std from one seed
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.stdev(values):.1f}"


def _row(name: str, values: list[float], signed: bool = False) -> list[str]:
    fmt = "{:+.1f}" if signed else "{:.1f}"
    mean = _stats(values)
    if signed and values:
        mean = ("+" if statistics.fmean(values) >= 0 else "") + mean
    return [name, mean, *(fmt.format(v) for v in values)]


def _table(title: str, head: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the ntu_kinect_gesture folder")
    p.add_argument("--work", type=Path, default=None, help="working folder (default /tmp/socketedge-real-rgbd, "
                                                            "or /tmp/socketedge-real-rgbd-quick with --quick)")
    p.add_argument("--out", type=Path, default=None, help="results stem: writes OUT.md and OUT.json "
                                                          "(default WORK/real_rgbd)")
    p.add_argument("--archs", default=None, help="comma-separated backbones (default efficientnet_lite0,resnet18; "
                                                 "efficientnet_lite0 uses its ImageNet weights, others start "
                                                 "from scratch)")
    p.add_argument("--split", choices=sorted(SPLITS), default="takes",
                   help="which task frames train the source: takes 1-5 of every subject (target: takes 6-10; "
                   "default) or subjects P1-P5 (target: P6-P10)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--size", type=int, default=None, help="model input size in px (default 80)")
    p.add_argument("--source-epochs", type=int, default=None, help="source training epochs (default 10)")
    p.add_argument("--source-min-steps", type=int, default=0,
                   help="TrainSourceConfig.min_steps (the library stretches small sets to 500 SGD steps by "
                        "default, ~10x this benchmark's budget; 0 = run --source-epochs as given)")
    p.add_argument("--adapt-epochs", type=int, default=None, help="adaptation epochs (default: the library's, "
                   "AdaptConfig.epochs = 15; the must-show is at default settings)")
    p.add_argument("--ti-per-class", type=int, default=100, help="TI pairs per TI class (max 100; default all)")
    p.add_argument("--depth-range", default="0.5,3.0", help="near,far in metres for depth preprocessing "
                                                            "(default 0.5,3.0)")
    p.add_argument("--table8", action="store_true", help="loss-term ablation (the paper's Table 8)")
    p.add_argument("--table9", action="store_true", help="λ_TI = λ_d sweep and TI-pairs-per-class sweep (Table 9)")
    p.add_argument("--table9-rows", default="lambda,pairs", help="which Table 9 rows: lambda, pairs or both "
                   "(default lambda,pairs)")
    p.add_argument("--ablation-arch", default="efficientnet_lite0", help="backbone of the ablations")
    p.add_argument("--quick", action="store_true", help="tiny configuration: seed 0, efficientnet_lite0, 64 px, "
                                                        "2 source + 1 adaptation epochs (checks the pipeline)")
    p.add_argument("--fresh", action="store_true", help="ignore cached cells (crops are kept)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--verbose", action="store_true", help="keep the library's own console output")
    args = p.parse_args(argv)
    from socketedge.adapt.config import AdaptConfig

    quick = {"archs": "efficientnet_lite0", "seeds": "0", "size": 64, "source_epochs": 2, "adapt_epochs": 1}
    default = {"archs": "efficientnet_lite0,resnet18", "seeds": "0,1,2", "size": 80, "source_epochs": 10,
               "adapt_epochs": AdaptConfig.model_fields["epochs"].default}
    for name, value in (quick if args.quick else default).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    archs = [x.strip() for x in args.archs.split(",") if x.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    near, far = (float(v) for v in args.depth_range.split(","))
    args.depth_range_t = (near, far)
    if not 0 < args.ti_per_class <= 100:
        p.error("--ti-per-class must be in 1..100 (the data has 100 frames per gesture)")
    t9_rows = set(args.table9_rows.split(","))
    if not t9_rows <= {"lambda", "pairs"}:
        p.error(f"--table9-rows takes lambda, pairs or lambda,pairs, got {args.table9_rows!r}")
    if not args.root.is_dir():
        p.error(f"--root {args.root} does not exist (the ntu_kinect_gesture folder)")
    work = args.work or Path("/tmp") / ("socketedge-real-rgbd" + ("-quick" if args.quick else ""))
    work.mkdir(parents=True, exist_ok=True)
    out = args.out or work / "real_rgbd"

    import torch

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    t_start = time.perf_counter()
    print(f"[{_clock()}] work {work}; {threads} torch threads; archs {archs}; seeds {seeds}; {args.size} px; "
          f"source {args.source_epochs} ep, adapt {args.adapt_epochs} ep; depth range {near}-{far} m", flush=True)
    keys = sorted(make_crops(args.root, work / "crops", lambda t: print(f"[{_clock()}] {t}", flush=True)))
    run = Runner(args, work, work / "crops", keys)

    report: dict = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                    "crop": CROP, "tables": {}}
    from socketedge.adapt.config import AdaptConfig

    fields = AdaptConfig.model_fields
    lambdas = ", ".join(f"{k} = {fields[k].default}" for k in ("lambda_ti", "lambda_d", "lambda_pl", "term_scale",
                                                                "recalibrate_bn") if k in fields)
    md = ["## Real RGB-D: NTU Kinect v1 hand gestures, RGB → depth, 5 task / 5 TI gestures",
          "",
          f"- input {args.size} px hand crops ({CROP['side']} px box from the depth frame, same box in colour); "
          f"source {args.source_epochs} epochs (min_steps {args.source_min_steps}); adaptation {args.adapt_epochs} "
          f"epochs; depth range {near}–{far} m; TI pairs {args.ti_per_class}/class × 5 classes; SOCKET with the "
          f"library defaults ({lambdas}); seeds {', '.join(map(str, seeds))}; target n = 250 (chance 20%)",
          f"- split {args.split}: {SPLITS[args.split]}; accuracy % on the target depth crops (task gestures); "
          "mean ± sample std over seeds, then each seed; source val = its 10% validation split of the source "
          "colour frames", ""]
    head = ["", "mean ± std", *(f"seed {s}" for s in seeds)]

    rows, notes = [], []
    for arch in archs:
        src = [run.source(arch, s)[1] for s in seeds]
        sched = src[0].get("schedule") or {}
        if sched:
            notes.append(f"- {arch} source: {sched.get('steps')} SGD steps of batch {sched.get('batch_size')}, "
                         f"kept weights: {src[0].get('kept')}")
        un = [run.cell(arch, s, "unadapted")["accuracy"] for s in seeds]
        shot = [run.cell(arch, s, "shot")["accuracy"] for s in seeds]
        sock = [run.cell(arch, s, "socket")["accuracy"] for s in seeds]
        tag = f"{arch}{' (ImageNet)' if ARCH_PRETRAINED.get(arch) else ' (scratch)'}"
        rows += [_row(f"{tag}: source val (RGB source frames)", [r["val_accuracy"] for r in src]),
                 _row(f"{tag}: source on RGB target frames (reference)", [r["rgb_reference_accuracy"] for r in src]),
                 _row(f"{tag}: unadapted", un), _row(f"{tag}: SHOT", shot), _row(f"{tag}: SOCKET", sock),
                 _row(f"{tag}: SOCKET − SHOT", [b - a for a, b in zip(shot, sock)], signed=True)]
        report["tables"].setdefault("main", {})[arch] = {
            "source_val": [r["val_accuracy"] for r in src], "rgb_reference": [r["rgb_reference_accuracy"] for r in src],
            "unadapted": un, "shot": shot, "socket": sock, "task_classes": [r["task_classes"] for r in src]}
    md[3:3] = notes
    md.append(_table("Unadapted vs SHOT vs SOCKET", head, rows))

    arch = args.ablation_arch
    if args.table8:
        rows, data = [], {}
        for name, method, overrides, in_paper in TABLE8_ROWS:
            accs = [run.cell(arch, s, method, overrides)["accuracy"] for s in seeds]
            rows.append(_row(name + ("" if in_paper else " *"), accs))
            data[name] = accs
        report["tables"]["table8"] = data
        md.append(_table(f"Table 8 — loss terms ({arch}; * = not in the paper)", head, rows))
    if args.table9 and "lambda" in t9_rows:
        rows, data = [], {}
        for lam in LAMBDA_SWEEP:
            method = "shot" if lam == 0 else "socket"
            overrides = {} if lam == 0 else {"lambda_ti": lam, "lambda_d": lam}
            accs = [run.cell(arch, s, method, overrides)["accuracy"] for s in seeds]
            rows.append(_row(f"λ_TI = λ_d = {lam:g}" + (" (= SHOT)" if lam == 0 else ""), accs))
            data[str(lam)] = accs
        report["tables"]["table9_lambda"] = data
        md.append(_table(f"Table 9 (right) — λ_TI = λ_d ({arch})", head, rows))
    if args.table9 and "pairs" in t9_rows:
        rows, data = [], {}
        for n in TI_SWEEP:
            accs = [(run.cell(arch, s, "shot") if n == 0 else run.cell(arch, s, "socket", ti_per_class=n))["accuracy"]
                    for s in seeds]
            rows.append(_row(f"{n} TI pairs / class" + (" (= SHOT)" if n == 0 else ""), accs))
            data[str(n)] = accs
        report["tables"]["table9_ti"] = data
        md.append(_table(f"Table 9 (left) — TI pairs per class, 5 TI classes ({arch}, default λs)", head, rows))

    minutes = (time.perf_counter() - t_start) / 60
    md.append(f"total {minutes:.1f} min; command: `python benchmarks/real_rgbd.py "
              f"{' '.join(sys.argv[1:] if argv is None else argv)}`")
    text = "\n".join(md)
    report["minutes"] = minutes
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.md").write_text(text + "\n")
    Path(f"{out}.json").write_text(json.dumps(report, indent=1))
    print()
    print(text)
    return report


if __name__ == "__main__":
    main()
