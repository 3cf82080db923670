"""Reproduce the paper's tables on its datasets, end to end, with socketedge's library functions.

    python benchmarks/reproduce.py --dataset sunrgbd --root /data/SUNRGBD
    python benchmarks/reproduce.py --dataset rgbnir --root /data/nirscene1 --seeds 0,1,2
    python benchmarks/reproduce.py --dataset diml --root /data/DIML_sample --import-option task_classes=a,b,c,d,e,f

``--root`` is the release as downloaded (it is imported first, into WORK/data, with the importer's defaults plus
``--import-option``) or a folder written by ``socketedge import`` (holding import.json), used as is.

Protocol (SOCKET, ECCV 2022, and its reference code): per domain an RGB source model is trained on the labeled
RGB images of the task classes (SHOT source recipe, 90/10 split, best validation epoch); it is then adapted to the
unlabeled target-modality images of the same domain with SHOT (one source) or DECISION (several sources, SUN
RGB-D leave-one-sensor-out) and with SOCKET (the same plus the paired task-irrelevant data and the BN-statistics
term). Accuracy is measured on the target images with their labels (which adaptation never reads), per seed;
the table shows mean ± sample standard deviation over the seeds, with the paper's number beside ours.

Tables (numbering as the issue states it): SUN RGB-D single-source RGB→depth per sensor (Table 3) and
multi-source (Table 4: the other three sensors' RGB models → the held-out sensor's depth), DIML RGB→depth
(Table 5), RGB-NIR Scene RGB→NIR (Table 6).

Every finished step is cached under WORK (source checkpoints, adapted bundles, results.json), so an interrupted
run continues where it stopped when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# The paper's accuracies (%), by dataset → table → method → task. None = not confirmed: we could not read the
# paper's tables from a public source available while writing this script, and we do not copy numbers we have
# not checked. Pass them with --paper-numbers FILE.json (same nesting, e.g. {"sunrgbd": {"single": {"socket":
# {"kv1": 0.0}}}}) to get the comparison column.
PAPER: dict[str, dict[str, dict[str, dict[str, float | None]]]] = {
    "sunrgbd": {
        "single": {m: dict.fromkeys(("kv1", "kv2", "realsense", "xtion"))
                   for m in ("unadapted", "shot", "socket")},
        "multi": {m: dict.fromkeys(("kv1", "kv2", "realsense", "xtion"))
                  for m in ("unadapted", "decision", "socket")},
    },
    "diml": {"single": {m: {"diml": None} for m in ("unadapted", "shot", "socket")}},
    "rgbnir": {"single": {m: {"nirscene": None} for m in ("unadapted", "shot", "socket")}},
}
TABLE_NAMES = {("sunrgbd", "single"): "Table 3 — SUN RGB-D, single source (RGB → depth, same sensor)",
               ("sunrgbd", "multi"): "Table 4 — SUN RGB-D, multi-source (other sensors' RGB → held-out depth)",
               ("diml", "single"): "Table 5 — DIML, RGB → depth",
               ("rgbnir", "single"): "Table 6 — RGB-NIR Scene, RGB → NIR"}
METHOD_NAMES = {"unadapted": "Unadapted (source only)", "shot": "SHOT", "decision": "DECISION", "socket": "SOCKET"}
LIST_OPTIONS = ("task_classes", "ti_classes", "sensors", "splits")


@dataclass(frozen=True)
class Task:
    name: str  # column of the table (target domain)
    sources: tuple[str, ...]  # domains whose RGB source models are adapted
    target: str  # domain whose target-modality images are the task


@dataclass(frozen=True)
class TableSpec:
    key: str  # single | multi
    methods: tuple[str, ...]
    tasks: tuple[Task, ...]


def tables_for(dataset: str, domains: list[str]) -> list[TableSpec]:
    single = TableSpec("single", ("unadapted", "shot", "socket"), tuple(Task(d, (d,), d) for d in domains))
    if dataset != "sunrgbd" or len(domains) < 2:
        return [single]
    multi = TableSpec("multi", ("unadapted", "decision", "socket"),
                      tuple(Task(t, tuple(d for d in domains if d != t), t) for t in domains))
    return [single, multi]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", required=True, choices=("sunrgbd", "rgbnir", "diml"))
    p.add_argument("--root", required=True, type=Path, help="the release as downloaded, or an imported folder")
    p.add_argument("--work", type=Path, default=None, help="working directory (default runs/reproduce-DATASET)")
    p.add_argument("--out", type=Path, default=None, help="markdown table to write (default WORK/results.md)")
    p.add_argument("--import-option", action="append", default=[], metavar="KEY=VALUE",
                   help="importer option, e.g. task_classes=a,b or min_per_sensor=2 (repeatable)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--arch", default="resnet50", help="source backbone (the paper: resnet50)")
    p.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                   help="train the source from scratch instead of from ImageNet weights (the paper's choice)")
    p.add_argument("--input-size", type=int, default=None, help="model input size (default: the backbone's)")
    p.add_argument("--source-epochs", type=int, default=20, help="source training epochs (reference code: 20)")
    p.add_argument("--adapt-epochs", type=int, default=15, help="adaptation epochs (reference code: 15)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size for training and adaptation (32)")
    p.add_argument("--lambda-ti", type=float, default=None, help="SOCKET λ_TI (default: socketedge's)")
    p.add_argument("--lambda-d", type=float, default=None, help="SOCKET λ_d (default: socketedge's)")
    p.add_argument("--one-source", action="store_true",
                   help="train each source model once (first seed) instead of once per seed")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--paper-numbers", type=Path, default=None, metavar="FILE.json",
                   help="the paper's accuracies as dataset → table → method → task → %% (fills the paper column)")
    return p.parse_args(argv)


def paper_numbers(path: Path | None) -> dict:
    """PAPER with the numbers of ``path`` filled in; unknown datasets, tables, methods or tasks are an error."""
    from socketedge.errors import ConfigError

    merged = json.loads(json.dumps(PAPER))
    if path is None:
        return merged
    try:
        given = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--paper-numbers {path}: {str(e).splitlines()[0]}") from None

    def fill(into: dict, new: dict, where: str) -> None:
        for key, value in (new.items() if isinstance(new, dict) else []):
            if key not in into:
                raise ConfigError(f"--paper-numbers {path}: unknown key {where + key!r}; expected one of "
                                  f"{', '.join(into)}")
            if isinstance(into[key], dict):
                fill(into[key], value, f"{where}{key}.")
            elif isinstance(value, (int, float)) and 0 <= value <= 100:
                into[key] = float(value)
            else:
                raise ConfigError(f"--paper-numbers {path}: {where + key} must be an accuracy in %, got {value!r}")

    if not isinstance(given, dict):
        raise ConfigError(f"--paper-numbers {path}: expected a JSON object")
    fill(merged, given, "")
    return merged


def _import_options(pairs: list[str]) -> dict:
    from socketedge.data.importers.base import parse_names
    from socketedge.errors import ConfigError

    opts = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--import-option {pair!r}: expected KEY=VALUE, e.g. task_classes=a,b")
        key = key.strip().replace("-", "_")
        opts[key] = parse_names(value) if key in LIST_OPTIONS else value.strip()
    return opts


def prepare_data(args: argparse.Namespace, work: Path) -> tuple[Path, dict]:
    """The imported dataset folder and its import.json (importing the release first when needed)."""
    from socketedge.data.importers import IMPORT_MANIFEST, import_dataset, plan_options, read_import
    from socketedge.errors import ConfigError

    root = Path(args.root)
    if (root / IMPORT_MANIFEST).is_file():
        manifest = read_import(root)
        if manifest["dataset"] != args.dataset:
            raise ConfigError(f"{root} holds an import of {manifest['dataset']}, not {args.dataset}")
        return root, manifest
    data = work / "data"
    options = _import_options(args.import_option)
    if (data / IMPORT_MANIFEST).is_file():  # reuse an earlier import of the same release with the same options
        manifest = read_import(data)
        resolved = plan_options(args.dataset, **options)
        if manifest["source_root"] == str(root.resolve()) and manifest["options"] == resolved:
            return data, manifest
    import_dataset(args.dataset, root, data, overwrite=True, show_progress=not args.quiet, **options)
    return data, read_import(data)


class Runner:
    """Runs (or reads back from the cache) every source training, adaptation and evaluation of the tables."""

    def __init__(self, args: argparse.Namespace, data: Path, manifest: dict, work: Path):
        self.args, self.data, self.manifest, self.work = args, data, manifest, work
        self.results_path = work / "results.json"
        self.results = json.loads(self.results_path.read_text()) if self.results_path.is_file() else {}
        self.results.setdefault("runs", {})
        self.show = not args.quiet
        ti = manifest.get("ti", {})
        self.has_ti = bool(ti.get("counts")) and (data / ti.get("path", "ti")).is_dir()

    def _save(self) -> None:
        from socketedge.models.bundle import write_json_atomic

        write_json_atomic(self.results_path, self.results)

    def _log(self, text: str) -> None:
        from socketedge.utils.progress import console

        console.print(text, highlight=False)

    def domain(self, name: str) -> dict:
        return self.manifest["domains"][name]

    def source(self, domain: str, seed: int) -> Path:
        from socketedge.models.train import TrainSourceConfig, train_source

        a = self.args
        s = a.seeds_list[0] if a.one_source else seed
        path = self.work / "sources" / f"{domain}-seed{s}.ckpt"
        if path.is_file():
            return path
        self._log(f"train-source {domain} (seed {s})")
        cfg = TrainSourceConfig(data=self.data / self.domain(domain)["source"], out=path, arch=a.arch,
                                pretrained=a.pretrained, epochs=a.source_epochs, batch_size=a.batch_size,
                                input_size=a.input_size, seed=s, device=a.device, show_progress=self.show)
        path.parent.mkdir(parents=True, exist_ok=True)
        written, _ = train_source(cfg)
        return Path(written)

    def cell(self, table: TableSpec, task: Task, method: str, seed: int) -> dict:
        key = f"{table.key}/{task.name}/{method}/seed{seed}"
        if key in self.results["runs"]:
            return self.results["runs"][key]
        if method == "socket" and not self.has_ti:
            return {"skipped": "no task-irrelevant pairs in the import"}
        from socketedge.adapt.config import AdaptConfig
        from socketedge.adapt.run import RESUME_FILE, adapt
        from socketedge.evaluate import evaluate
        from socketedge.models.bundle import is_bundle

        a = self.args
        dom = self.domain(task.target)
        target = self.data / dom["target"]
        scale = dom.get("depth_scale")
        sources = [self.source(d, seed) for d in task.sources]
        t0 = time.perf_counter()
        record: dict = {"sources": [str(p) for p in sources]}
        if method == "unadapted":
            models = sources
        else:
            out = self.work / "adapted" / table.key / task.name / f"{method}-seed{seed}"
            if not is_bundle(out):
                self._log(f"adapt {method}: {' + '.join(task.sources)} → {task.target} (seed {seed})")
                extra = {k: v for k, v in (("lambda_ti", a.lambda_ti), ("lambda_d", a.lambda_d)) if v is not None}
                cfg = AdaptConfig(sources=sources, target=target, out=out, method=method,
                                  ti=self.data / self.manifest["ti"]["path"] if method == "socket" else None,
                                  epochs=a.adapt_epochs, batch_size=a.batch_size, seed=seed, device=a.device,
                                  depth_scale=scale, resume=(out / RESUME_FILE).is_file(),
                                  show_progress=self.show, **extra)
                adapt(cfg)
            models = [out]
            record["bundle"] = str(out)
        metrics = evaluate(models, target, device=a.device, depth_scale=scale if method == "unadapted" else None,
                           show_progress=self.show)
        record |= {"accuracy": metrics["accuracy"], "n": metrics["n"], "seconds": time.perf_counter() - t0}
        self.results["runs"][key] = record
        self._save()
        self._log(f"{key}: {record['accuracy']:.1f}%")
        return record


def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def render(dataset: str, tables: list[TableSpec], cells: dict, manifest: dict, args: argparse.Namespace,
           seconds: float) -> str:
    lines = [f"# socketedge vs the paper: {dataset}", ""]
    split = manifest["split"]
    lines += [f"- data: `{manifest['source_root']}` imported by socketedge (import.json), target modality "
              f"{manifest['modality']}",
              f"- task classes ({len(split['task_classes'])}): {', '.join(split['task_classes'])}",
              f"- task-irrelevant classes ({len(split['ti_classes'])}): {', '.join(split['ti_classes']) or 'none'}",
              f"- split rule: {split['rule']}",
              f"- source: {args.arch}{' (ImageNet-pretrained)' if args.pretrained else ' (from scratch)'}, "
              f"{args.source_epochs} epoch(s); adaptation {args.adapt_epochs} epoch(s); batch {args.batch_size}; "
              f"seeds {', '.join(map(str, args.seeds_list))}; device {args.device}",
              f"- cells: target accuracy %, mean ± sample std over seeds; paper = the paper's number "
              f"(n/c = not confirmed: pass --paper-numbers FILE.json, left blank rather than guessed); multi-source "
              f"Unadapted = the equal-weight ensemble of the source models",
              f"- total time {seconds / 60:.1f} min; command: `python benchmarks/reproduce.py "
              f"{' '.join(args.argv)}`", ""]
    for table in tables:
        paper = args.papers.get(dataset, {}).get(table.key, {})
        lines += [f"## {TABLE_NAMES.get((dataset, table.key), table.key)}", ""]
        head = ["method"] + [f"{t.name} {who}" for t in table.tasks for who in ("ours", "paper")]
        head += ["avg ours", "avg paper"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for method in table.methods:
            ours, theirs, means = [], [], []
            for t in table.tasks:
                runs = [cells[(table.key, t.name, method, s)] for s in args.seeds_list]
                accs = [r["accuracy"] for r in runs if "accuracy" in r]
                ours.append(_fmt(accs) if accs else runs[0].get("skipped", "—"))
                if accs:
                    means.append(statistics.fmean(accs))
                p = paper.get(method, {}).get(t.name)
                theirs.append("n/c" if p is None else f"{p:.1f}")
            known = [paper.get(method, {}).get(t.name) for t in table.tasks]
            avg_paper = f"{statistics.fmean(known):.1f}" if known and all(v is not None for v in known) else "n/c"
            avg_ours = f"{statistics.fmean(means):.1f}" if len(means) == len(table.tasks) else "—"
            beside = [c for pair in zip(ours, theirs) for c in pair]
            lines.append("| " + " | ".join([METHOD_NAMES[method], *beside, avg_ours, avg_paper]) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.seeds_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.papers = paper_numbers(args.paper_numbers)  # a bad file fails now, not after hours of training
    work = Path(args.work or Path("runs") / f"reproduce-{args.dataset}")
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data, manifest = prepare_data(args, work)
    runner = Runner(args, data, manifest, work)
    tables = tables_for(args.dataset, list(manifest["domains"]))
    cells = {}
    for table in tables:
        for task in table.tasks:
            for method in table.methods:
                for seed in args.seeds_list:
                    cells[(table.key, task.name, method, seed)] = runner.cell(table, task, method, seed)
    text = render(args.dataset, tables, cells, manifest, args, time.perf_counter() - t0)
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
