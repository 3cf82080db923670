"""Reproduce the paper's tables (SOCKET, ECCV 2022: Tables 3, 4, 5, 6, 8, 9) side by side with its numbers,
end to end with socketedge's library functions.

    python benchmarks/reproduce.py --sunrgbd /data/SUNRGBD --diml /data/DIML_sample --rgbnir /data/nirscene1
    python benchmarks/reproduce.py --sunrgbd /data/SUNRGBD --tables 3,8 --seeds 0
    python benchmarks/reproduce.py --dataset rgbnir --root /data/nirscene1          # the older one-dataset form

Each ``--DATASET ROOT`` is the release as downloaded (imported first, into WORK/data/DATASET, with the importer's
defaults plus ``--import-option [DATASET.]KEY=VALUE``) or a folder written by ``socketedge import`` (holding
import.json), used as is. ``--tables`` picks a subset (default: every table whose datasets were given).

Protocol (the paper and its reference code): per domain a source model is trained on the labeled task images of
the source modality (RGB; NIR for Table 6's NIR → RGB), then adapted to the unlabeled task images of the target
modality with SHOT (one source), DECISION (several) or SOCKET (the same plus the paired task-irrelevant data and
the BN-statistics term). Accuracy is on the target images with their labels (which adaptation never reads); a
cell is the mean ± sample std over the seeds, beside the paper's number (benchmarks/paper_tables.json, with its
citation; ``--paper-numbers FILE.json`` overrides any of them, same nesting).

- Table 3: SUN RGB-D, RGB of each sensor → depth of each sensor (4 × 4), Unadapted / SHOT / SOCKET + average.
- Table 4: the six two-sensor RGB source pairs → each sensor's depth, DECISION / SOCKET + average.
- Table 5: DIML RGB → depth; SOCKET with DIML's own TI pairs and with SUN RGB-D's (needs --sunrgbd too): the
  SUN pairs keep their own depth units, read from their import.json.
- Table 6: RGB-NIR Scene, RGB → NIR and NIR → RGB (the TI pairs used the other way round).
- Table 8: loss ablation L_ma (= SHOT / DECISION), + BN term, + TI term, + both (= SOCKET) on (a) kv2 → kv2 and
  (b) kv1 + xtion → kv1.
- Table 9: kv1 → kv1 with 0 / 20 / 40 / 60 TI images per class of six randomly drawn TI classes (fewer where the
  data has fewer), and the λ_TI = λ_d sweep (0 = SHOT) on kv1 → kv1 and kv2 → kv2 (the paper's rows "Kinect v1",
  "Kinect v2"; see the note in paper_tables.json).

Every finished cell is cached in WORK/results.json (and every source checkpoint and adapted bundle under WORK),
keyed by what it computes, so cells shared by several tables run once and a stopped run continues where it
stopped when started again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAPER_FILE = HERE / "paper_tables.json"
DATASETS = ("sunrgbd", "diml", "rgbnir")
SENSORS = ("kv1", "kv2", "realsense", "xtion")
SENSOR_NAMES = {"kv1": "Kinect v1", "kv2": "Kinect v2", "realsense": "RealSense", "xtion": "Xtion"}
TABLES = (3, 4, 5, 6, 8, 9)
NEEDS = {3: ("sunrgbd",), 4: ("sunrgbd",), 5: ("diml",), 6: ("rgbnir",), 8: ("sunrgbd",), 9: ("sunrgbd",)}
METHOD_NAMES = {"unadapted": "Unadapted", "shot": "SHOT", "decision": "DECISION", "socket": "SOCKET"}
TI_COUNTS = (60, 40, 20, 0)  # Table 9 left, per class
TI_SWEEP_CLASSES = 6
LAMBDAS = ("0.00", "0.05", "0.10", "0.50", "1.00")  # Table 9 right
ABLATION = {"ma": (0, 0), "ma+d": (0, 1), "ma+ti": (1, 0), "ma+d+ti": (1, 1)}  # (TI on, BN on)
LIST_OPTIONS = ("task_classes", "ti_classes", "sensors", "splits")


# ---------------------------------------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class Cell:
    """One accuracy to compute (over seeds): sources of ``dataset`` → ``target``, one method and its settings."""

    dataset: str
    sources: tuple[str, ...]  # domains whose source models are adapted
    target: str  # domain whose target-modality images are the task
    method: str  # unadapted | shot | decision | socket
    source_modality: str = "rgb"  # "nir": Table 6's NIR → RGB (the target is then the domain's RGB images)
    lambda_ti: float | None = None  # None: the run's --lambda-ti (socket only)
    lambda_d: float | None = None
    ti: str = "own"  # own (the dataset's TI pairs) | sunrgbd (SUN RGB-D's) | cN-nK (Table 9 subset)

    @property
    def key(self) -> str:
        parts = [self.method]
        if self.method == "socket":
            parts += [f"lti{self.lambda_ti:g}" if self.lambda_ti is not None else "lti=run",
                      f"ld{self.lambda_d:g}" if self.lambda_d is not None else "ld=run", f"ti={self.ti}"]
        direction = f"{self.source_modality}2" if self.source_modality != "rgb" else ""
        return f"{self.dataset}/{direction}{'+'.join(self.sources)}->{self.target}/{'-'.join(parts)}"


@dataclass
class Grid:
    """A table in the paper's shape: rows × columns of (cell to run or None, the paper's number or None)."""

    number: int
    title: str
    corner: str
    columns: list[str]
    rows: list[tuple[str, list[tuple[Cell | None, float | None]]]]
    average: list[float | None] | None = None  # the paper's average row, if it prints one
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------- options
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    for d in DATASETS:
        p.add_argument(f"--{d}", type=Path, default=None, metavar="ROOT", help=f"{d} release or import folder")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="with --root: the one-dataset form")
    p.add_argument("--root", type=Path, default=None, help="with --dataset: that dataset's ROOT")
    p.add_argument("--tables", default=None, help="comma-separated subset of 3,4,5,6,8,9 (default: every table "
                                                  "whose datasets are given)")
    p.add_argument("--work", type=Path, default=None, help="working directory (default runs/reproduce)")
    p.add_argument("--out", type=Path, default=None, help="markdown file to write (default WORK/results.md)")
    p.add_argument("--import-option", action="append", default=[], metavar="[DATASET.]KEY=VALUE",
                   help="importer option, e.g. sunrgbd.min_per_sensor=2 or rgbnir.ti_classes=a,b (repeatable)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--arch", default="resnet50", help="source backbone (the paper: resnet50)")
    p.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                   help="train the source from scratch instead of from ImageNet weights (the paper's choice)")
    p.add_argument("--input-size", type=int, default=None, help="model input size (default: the backbone's)")
    p.add_argument("--source-epochs", type=int, default=20, help="source training epochs (reference code: 20)")
    p.add_argument("--source-min-steps", type=int, default=None,
                   help="source training: at least this many SGD steps (default: train-source's)")
    p.add_argument("--adapt-epochs", type=int, default=15, help="adaptation epochs (reference code: 15)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size for training and adaptation (32)")
    p.add_argument("--lambda-ti", type=float, default=None, help="SOCKET λ_TI (default: socketedge's)")
    p.add_argument("--lambda-d", type=float, default=None, help="SOCKET λ_d (default: socketedge's)")
    p.add_argument("--one-source", action="store_true",
                   help="train each source model once (first seed) instead of once per seed")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--paper-numbers", type=Path, default=None, metavar="FILE.json",
                   help="override the shipped paper numbers (benchmarks/paper_tables.json nesting)")
    return p.parse_args(argv)


def _roots(args: argparse.Namespace) -> dict[str, Path]:
    from socketedge.errors import ConfigError

    roots = {d: getattr(args, d) for d in DATASETS if getattr(args, d) is not None}
    if (args.dataset is None) != (args.root is None):
        raise ConfigError("--dataset and --root go together (or give --sunrgbd / --diml / --rgbnir ROOT)")
    if args.dataset is not None:
        if args.dataset in roots and roots[args.dataset] != args.root:
            raise ConfigError(f"--root and --{args.dataset} name two folders for {args.dataset}")
        roots[args.dataset] = args.root
    if not roots:
        raise ConfigError("no dataset given: pass --sunrgbd ROOT, --diml ROOT and/or --rgbnir ROOT")
    return roots


def _tables(args: argparse.Namespace, roots: dict[str, Path]) -> list[int]:
    from socketedge.errors import ConfigError

    if args.tables is None:
        chosen = [t for t in TABLES if all(d in roots for d in NEEDS[t])]
        if not chosen:
            raise ConfigError(f"no table can run on {', '.join(roots)}")
        return chosen
    try:
        chosen = sorted({int(t) for t in args.tables.split(",") if t.strip()})
    except ValueError:
        raise ConfigError(f"--tables {args.tables!r}: expected numbers among {', '.join(map(str, TABLES))}") from None
    for t in chosen:
        if t not in TABLES:
            raise ConfigError(f"--tables: no Table {t} to reproduce; choose among {', '.join(map(str, TABLES))}")
        missing = [d for d in NEEDS[t] if d not in roots]
        if missing:
            raise ConfigError(f"Table {t} needs --{missing[0]} ROOT")
    return chosen


def paper_numbers(path: Path | None) -> dict:
    """The shipped paper numbers, with those of ``path`` (same nesting) put over them; a key the shipped file does
    not have, or a value that is not an accuracy in %, is an error."""
    from socketedge.errors import ConfigError

    merged = json.loads(PAPER_FILE.read_text())
    if path is None:
        return merged
    try:
        given = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--paper-numbers {path}: {str(e).splitlines()[0]}") from None

    def fill(into: dict, new: dict, where: str) -> None:
        for key, value in new.items():
            if key not in into:
                known = ", ".join(k for k in into if not k.startswith("_"))
                raise ConfigError(f"--paper-numbers {path}: unknown key {where + key!r}; expected one of {known}")
            if isinstance(into[key], dict):
                if not isinstance(value, dict):
                    raise ConfigError(f"--paper-numbers {path}: {where + key} must be an object")
                fill(into[key], value, f"{where}{key}.")
            elif isinstance(value, (int, float)) and 0 <= value <= 100:
                into[key] = float(value)
            else:
                raise ConfigError(f"--paper-numbers {path}: {where + key} must be an accuracy in %, got {value!r}")

    if not isinstance(given, dict):
        raise ConfigError(f"--paper-numbers {path}: expected a JSON object")
    fill(merged, given, "")
    return merged


def _import_options(pairs: list[str], roots: dict[str, Path]) -> dict[str, dict]:
    from socketedge.data.importers.base import parse_names
    from socketedge.errors import ConfigError

    opts: dict[str, dict] = {d: {} for d in roots}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--import-option {pair!r}: expected [DATASET.]KEY=VALUE, e.g. task_classes=a,b")
        dataset, dot, key = key.strip().rpartition(".")
        if not dot:
            if len(roots) != 1:
                raise ConfigError(f"--import-option {pair!r}: say which dataset it is for, e.g. "
                                  f"{next(iter(roots))}.{key}=…")
            dataset = next(iter(roots))
        if dataset not in roots:
            raise ConfigError(f"--import-option {pair!r}: {dataset!r} is not among the given datasets "
                              f"({', '.join(roots)})")
        key = key.replace("-", "_")
        opts[dataset][key] = parse_names(value) if key in LIST_OPTIONS else value.strip()
    return opts


def prepare_data(dataset: str, root: Path, options: dict, work: Path, show: bool) -> tuple[Path, dict]:
    """The imported dataset folder and its import.json (importing the release first when needed)."""
    from socketedge.data.importers import IMPORT_MANIFEST, import_dataset, plan_options, read_import
    from socketedge.errors import ConfigError

    root = Path(root)
    if (root / IMPORT_MANIFEST).is_file():
        manifest = read_import(root)
        if manifest["dataset"] != dataset:
            raise ConfigError(f"{root} holds an import of {manifest['dataset']}, not {dataset}")
        return root, manifest
    data = work / "data" / dataset
    if (data / IMPORT_MANIFEST).is_file():  # reuse an earlier import of the same release with the same options
        manifest = read_import(data)
        if manifest["source_root"] == str(root.resolve()) and manifest["options"] == plan_options(dataset, **options):
            return data, manifest
    import_dataset(dataset, root, data, overwrite=True, show_progress=show, **options)
    return data, read_import(data)


# ---------------------------------------------------------------------------------------------------------- tables
def _p(paper: dict, *path: str) -> float | None:
    for k in path:
        if not isinstance(paper, dict) or k not in paper:
            return None
        paper = paper[k]
    return paper if isinstance(paper, (int, float)) else None


def build_tables(chosen: list[int], manifests: dict[str, dict], paper: dict) -> list[Grid]:
    """The selected tables in the paper's shape; a cell whose domains were not imported has no run (—)."""
    sun = manifests.get("sunrgbd", {}).get("domains", {})
    has = lambda *domains: all(d in sun for d in domains)  # noqa: E731
    grids = []
    for t in chosen:
        if t == 3:
            p = paper["table3_sunrgbd_single_source"]
            methods = ("unadapted", "shot", "socket")
            cols = [f"{s} {METHOD_NAMES[m]}" for s in SENSORS for m in methods]
            rows = [(src, [(Cell("sunrgbd", (src,), tgt, m) if has(src, tgt) else None,
                            _p(p, "by_source", src, tgt, m)) for tgt in SENSORS for m in methods])
                    for src in SENSORS]
            grids.append(Grid(3, "Table 3 — SUN RGB-D, single source: RGB of the row's sensor → depth of the "
                              "column's sensor", "RGB source ↓ / depth target →", cols, rows,
                              [_p(p, "average", tgt, m) for tgt in SENSORS for m in methods]))
        elif t == 4:
            p = paper["table4_sunrgbd_two_sources"]
            methods = ("decision", "socket")
            cols = [f"{s} {METHOD_NAMES[m]}" for s in SENSORS for m in methods]
            rows = [(f"{a}+{b}", [(Cell("sunrgbd", (a, b), tgt, m) if has(a, b, tgt) else None,
                                   _p(p, "by_sources", f"{a}+{b}", tgt, m)) for tgt in SENSORS for m in methods])
                    for a, b in itertools.combinations(SENSORS, 2)]
            grids.append(Grid(4, "Table 4 — SUN RGB-D, two sources: RGB of the row's two sensors → depth of the "
                              "column's sensor", "RGB sources ↓ / depth target →", cols, rows,
                              [_p(p, "average", tgt, m) for tgt in SENSORS for m in methods]))
        elif t == 5:
            p = paper["table5_diml_rgb_to_depth"]
            sun_ti = "sunrgbd" in manifests
            rows = [("Unadapted (TI: none)", [(Cell("diml", ("diml",), "diml", "unadapted"), _p(p, "unadapted"))]),
                    ("SHOT (TI: none)", [(Cell("diml", ("diml",), "diml", "shot"), _p(p, "shot"))]),
                    ("SOCKET (TI: DIML RGB+D)", [(Cell("diml", ("diml",), "diml", "socket"), _p(p, "socket_ti_diml"))]),
                    ("SOCKET (TI: SUN RGB-D)", [(Cell("diml", ("diml",), "diml", "socket", ti="sunrgbd")
                                                 if sun_ti else None, _p(p, "socket_ti_sunrgbd"))])]
            notes = [] if sun_ti else ["SOCKET with SUN RGB-D TI pairs needs --sunrgbd ROOT as well"]
            grids.append(Grid(5, "Table 5 — DIML, RGB → depth, TI pairs from DIML and from SUN RGB-D",
                              "method (TI data)", ["DIML depth"], rows, notes=notes))
        elif t == 6:
            p = paper["table6_rgbnir"]
            methods = ("unadapted", "shot", "socket")
            rows = [("RGB → NIR", [(Cell("rgbnir", ("nirscene",), "nirscene", m), _p(p, "rgb_to_nir", m))
                                   for m in methods]),
                    ("NIR → RGB", [(Cell("rgbnir", ("nirscene",), "nirscene", m, source_modality="nir"),
                                    _p(p, "nir_to_rgb", m)) for m in methods])]
            grids.append(Grid(6, "Table 6 — RGB-NIR Scene, both directions", "direction",
                              [METHOD_NAMES[m] for m in methods], rows))
        elif t == 8:
            p = paper["table8_ablation"]
            tasks = {"a": (("kv2",), "kv2"), "b": (("kv1", "xtion"), "kv1")}
            rows = []
            for name, (ti_on, bn_on) in ABLATION.items():
                cells = []
                for col, (srcs, tgt) in tasks.items():
                    base = "shot" if len(srcs) == 1 else "decision"
                    if not (ti_on or bn_on):
                        cell = Cell("sunrgbd", srcs, tgt, base)
                    elif ti_on and bn_on:
                        cell = Cell("sunrgbd", srcs, tgt, "socket")
                    else:
                        cell = Cell("sunrgbd", srcs, tgt, "socket", lambda_ti=None if ti_on else 0.0,
                                    lambda_d=None if bn_on else 0.0)
                    cells.append((cell if has(*srcs, tgt) else None, _p(p, name, col)))
                rows.append((f"L_{name}", cells))
            grids.append(Grid(8, "Table 8 — loss ablation (L_ma = ent − div + pl: SHOT / DECISION; d = BN term; "
                              "ti = TI term)", "losses", ["(a) kv2 → kv2", "(b) kv1+xtion → kv1"], rows))
        elif t == 9:
            p = paper["table9_ti_images_per_class"]
            rows = [(f"{n} TI images / class", [((Cell("sunrgbd", ("kv1",), "kv1", "shot") if n == 0 else
                                                  Cell("sunrgbd", ("kv1",), "kv1", "socket",
                                                       ti=f"c{TI_SWEEP_CLASSES}-n{n}")) if has("kv1") else None,
                                                 _p(p, str(n)))]) for n in TI_COUNTS]
            grids.append(Grid(9, f"Table 9 (left) — kv1 → kv1, number of TI images per class of "
                              f"{TI_SWEEP_CLASSES} random TI classes", "TI images", ["kv1 → kv1 SOCKET"], rows,
                              notes=[f"TI classes drawn with random.Random(0) from the import's TI classes (at "
                                     f"most {TI_SWEEP_CLASSES}); a class with fewer images gives all it has"]))
            p = paper["table9_lambda_sweep"]
            rows = []
            for lam in LAMBDAS:
                v = float(lam)
                rows.append((f"λ_TI = λ_d = {lam}", [
                    ((Cell("sunrgbd", (s,), s, "shot") if v == 0 else
                      Cell("sunrgbd", (s,), s, "socket", lambda_ti=v, lambda_d=v)) if has(s) else None,
                     _p(p, s, lam)) for s in ("kv1", "kv2")]))
            grids.append(Grid(9, "Table 9 (right) — λ_TI = λ_d sweep (λ = 0 is SHOT)", "λ",
                              ["kv1 → kv1", "kv2 → kv2"], rows,
                              notes=[p.get("_shape", "")] if p.get("_shape") else []))
    return grids


# ---------------------------------------------------------------------------------------------------------- runs
class Runner:
    """Runs (or reads back from the cache) every source training, adaptation and evaluation of the tables."""

    def __init__(self, args: argparse.Namespace, data: dict[str, Path], manifests: dict[str, dict], work: Path):
        self.args, self.data, self.manifests, self.work = args, data, manifests, work
        self.results_path = work / "results.json"
        self.results = json.loads(self.results_path.read_text()) if self.results_path.is_file() else {}
        self.results.setdefault("runs", {})
        self.show = not args.quiet

    def _save(self) -> None:
        from socketedge.utils.atomic import write_json_atomic

        write_json_atomic(self.results_path, self.results)

    def _log(self, text: str) -> None:
        from socketedge.utils.progress import console

        console.print(text, highlight=False)

    def _domain(self, dataset: str, name: str) -> dict:
        return self.manifests[dataset]["domains"][name]

    def _folders(self, cell: Cell, domain: str) -> tuple[Path, Path, str]:
        """(labeled source-modality images, target-modality images, target modality) of ``domain``."""
        dom, root = self._domain(cell.dataset, domain), self.data[cell.dataset]
        if cell.source_modality == "rgb":
            return root / dom["source"], root / dom["target"], dom["modality"]
        if cell.source_modality != dom["modality"]:
            raise AssertionError(f"{cell.key}: no {cell.source_modality} images in {cell.dataset}")
        return root / dom["target"], root / dom["source"], "rgb"  # the other direction: roles swapped

    def source(self, cell: Cell, domain: str, seed: int) -> Path:
        from socketedge.models.train import TrainSourceConfig, train_source

        a = self.args
        s = a.seeds_list[0] if a.one_source else seed
        path = self.work / "sources" / f"{cell.dataset}-{domain}-{cell.source_modality}-seed{s}.ckpt"
        if path.is_file():
            return path
        self._log(f"train-source {cell.dataset} {domain} {cell.source_modality} (seed {s})")
        extra = {"min_steps": a.source_min_steps} if a.source_min_steps is not None else {}
        cfg = TrainSourceConfig(data=self._folders(cell, domain)[0], out=path, arch=a.arch,
                                modality=cell.source_modality,
                                pretrained=a.pretrained, epochs=a.source_epochs, batch_size=a.batch_size,
                                input_size=a.input_size, seed=s, device=a.device, show_progress=self.show, **extra)
        path.parent.mkdir(parents=True, exist_ok=True)
        written, _ = train_source(cfg)
        return Path(written)

    def ti_folder(self, cell: Cell) -> Path | None:
        m = self.manifests[cell.dataset]
        if cell.ti == "own":
            ti = m.get("ti", {})
            path = self.data[cell.dataset] / ti.get("path", "ti")
            return path if ti.get("counts") and path.is_dir() else None
        if cell.ti == "sunrgbd":  # another dataset's pairs: they keep their own depth units (their import.json)
            ti = self.manifests["sunrgbd"].get("ti", {})
            path = self.data["sunrgbd"] / ti.get("path", "ti")
            return path if ti.get("counts") and path.is_dir() else None
        return self.ti_subset(cell.dataset, cell.ti)

    def ti_subset(self, dataset: str, spec: str) -> Path | None:
        """Table 9's TI set: ``cC-nN`` = N pairs of each of C TI classes drawn with seed 0 (copied once)."""
        c, n = (int(x[1:]) for x in spec.split("-"))
        m = self.manifests[dataset]
        src = self.data[dataset] / m["ti"]["path"]
        classes = sorted(m["ti"].get("counts", {}))
        if not classes:
            return None
        picked = sorted(random.Random(0).sample(classes, min(c, len(classes))))
        out = self.work / "ti-subsets" / f"{dataset}-{spec}"
        if (out / "done").is_file():
            return out
        shutil.rmtree(out, ignore_errors=True)
        modalities = m["ti"]["modalities"]
        for cls in picked:
            stems = sorted(p.stem for p in (src / modalities[0] / cls).iterdir() if p.is_file())
            random.Random(f"{cls}-0").shuffle(stems)
            for stem in stems[:n]:
                for mod in modalities:
                    (f,) = [p for p in (src / mod / cls).iterdir() if p.stem == stem]
                    (out / mod / cls).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, out / mod / cls / f.name)
        (out / "done").write_text(json.dumps({"classes": picked, "per_class": n}))
        return out

    def run(self, cell: Cell, seed: int) -> dict:
        key = f"{cell.key}/seed{seed}"
        if key in self.results["runs"]:
            return self.results["runs"][key]
        from socketedge.adapt.config import AdaptConfig
        from socketedge.adapt.run import RESUME_FILE, adapt
        from socketedge.evaluate import evaluate
        from socketedge.models.bundle import is_bundle

        a = self.args
        ti = self.ti_folder(cell) if cell.method == "socket" else None
        if cell.method == "socket" and ti is None:
            return {"skipped": "no TI pairs"}
        _, target, modality = self._folders(cell, cell.target)
        scale = self._domain(cell.dataset, cell.target).get("depth_scale") if modality == "depth" else None
        sources = [self.source(cell, d, seed) for d in cell.sources]
        t0 = time.perf_counter()
        record: dict = {"sources": [str(p) for p in sources]}
        if cell.method == "unadapted":
            models = sources
        else:
            out = self.work / "adapted" / cell.key.replace(">", "") / f"seed{seed}"
            if not is_bundle(out):
                self._log(f"adapt {cell.key} (seed {seed})")
                lambdas = {"lambda_ti": cell.lambda_ti if cell.lambda_ti is not None else a.lambda_ti,
                           "lambda_d": cell.lambda_d if cell.lambda_d is not None else a.lambda_d}
                cfg = AdaptConfig(sources=sources, target=target, out=out, method=cell.method, ti=ti,
                                  epochs=a.adapt_epochs, batch_size=a.batch_size, seed=seed, device=a.device,
                                  modality=modality, depth_scale=scale, resume=(out / RESUME_FILE).is_file(),
                                  show_progress=self.show, **{k: v for k, v in lambdas.items() if v is not None})
                adapt(cfg)
            models = [out]
            record["bundle"] = str(out)
        metrics = evaluate(models, target, modality=modality, device=a.device,
                           depth_scale=scale if cell.method == "unadapted" else None, show_progress=self.show)
        record |= {"accuracy": metrics["accuracy"], "n": metrics["n"], "seconds": time.perf_counter() - t0}
        self.results["runs"][key] = record
        self._save()
        self._log(f"{key}: {record['accuracy']:.1f}%")
        return record


# ---------------------------------------------------------------------------------------------------------- render
def _fmt(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def _ours(cell: Cell | None, results: dict, seeds: list[int]) -> tuple[str, float | None]:
    if cell is None:
        return "—", None
    runs = [results.get(f"{cell.key}/seed{s}", {}) for s in seeds]
    accs = [r["accuracy"] for r in runs if "accuracy" in r]
    if len(accs) != len(seeds):
        return next((r["skipped"] for r in runs if "skipped" in r), "—"), None
    return _fmt(accs), statistics.fmean(accs)


def _paper(v: float | None) -> str:
    return "n/c" if v is None else f"{v:.1f}"


def render_grid(grid: Grid, results: dict, seeds: list[int]) -> list[str]:
    lines = [f"## {grid.title}", "", "| " + " | ".join([grid.corner, *grid.columns]) + " |",
             "|" + "---|" * (len(grid.columns) + 1)]
    means: list[list[float | None]] = [[] for _ in grid.columns]
    for label, cells in grid.rows:
        row = []
        for i, (cell, paper) in enumerate(cells):
            text, mean = _ours(cell, results, seeds)
            means[i].append(mean)
            row.append(f"{text} / {_paper(paper)}")
        lines.append("| " + " | ".join([label, *row]) + " |")
    if grid.average is not None:
        avg = []
        for col, paper in zip(means, grid.average):
            ours = f"{statistics.fmean(col):.1f}" if col and all(v is not None for v in col) else "—"
            avg.append(f"{ours} / {_paper(paper)}")
        lines.append("| " + " | ".join(["average", *avg]) + " |")
    lines.append("")
    lines += [f"- {n}" for n in grid.notes if n]
    return lines + ([""] if grid.notes else [])


def render(grids: list[Grid], results: dict, manifests: dict, args: argparse.Namespace, seconds: float,
           paper: dict) -> str:
    lines = ["# socketedge vs the paper (SOCKET, ECCV 2022)", ""]
    lines += [f"- paper numbers: {paper.get('citation', '')} (benchmarks/paper_tables.json"
              f"{'; overridden by ' + str(args.paper_numbers) if args.paper_numbers else ''})"]
    for d, m in manifests.items():
        split = m["split"]
        lines.append(f"- {d}: `{m['source_root']}` imported by socketedge; {len(split['task_classes'])} task classes, "
                     f"{len(split['ti_classes'])} task-irrelevant classes ({split['rule']}); domains "
                     f"{', '.join(m['domains'])}")
    lines += [f"- source: {args.arch}{' (ImageNet-pretrained)' if args.pretrained else ' (from scratch)'}, "
              f"{args.source_epochs} epoch(s); adaptation {args.adapt_epochs} epoch(s); batch {args.batch_size}; "
              f"seeds {', '.join(map(str, args.seeds_list))}; device {args.device}",
              "- cells: **ours / paper**, target accuracy %; ours = mean ± sample std over the seeds; — = not run "
              "(its domain or dataset not given); n/c = the paper prints no such number; multi-source Unadapted = the "
              "equal-weight ensemble",
              f"- total time {seconds / 60:.1f} min; command: `python benchmarks/reproduce.py {' '.join(args.argv)}`",
              ""]
    for g in grids:
        lines += render_grid(g, results, args.seeds_list)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.seeds_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    paper = paper_numbers(args.paper_numbers)  # a bad file or option fails now, not after hours of training
    roots = _roots(args)
    chosen = _tables(args, roots)
    options = _import_options(args.import_option, roots)
    work = Path(args.work or Path("runs") / "reproduce")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data, manifests = {}, {}
    for d, root in roots.items():
        data[d], manifests[d] = prepare_data(d, root, options[d], work, not args.quiet)
    grids = build_tables(chosen, manifests, paper)
    runner = Runner(args, data, manifests, work)
    for g in grids:
        for _, cells in g.rows:
            for cell, _ in cells:
                for seed in args.seeds_list if cell is not None else ():
                    runner.run(cell, seed)
    text = render(grids, runner.results["runs"], manifests, args, time.perf_counter() - t0, paper)
    out = Path(args.out or work / "results.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    return text


if __name__ == "__main__":
    from socketedge.errors import SocketEdgeError

    try:
        main()
    except SocketEdgeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
