"""`synthesize`: write a complete synthetic RGB-D dataset in the on-disk layouts real data uses.

    OUT/source/<class>/<stem>.png                        labeled RGB of the task classes (source training)
    OUT/ti/rgb/<ti>/<stem>.png, OUT/ti/depth/<ti>/<stem>.png   paired task-irrelevant scenes
    OUT/target/depth/<stem>.png                          unlabeled depth of the task classes (flat, opaque names)
    OUT/eval/rgb/<class>/<stem>.png, OUT/eval/depth/<class>/<stem>.png   held-out labeled scenes, both modalities
    OUT/synth.json                                       config, class lists, counts, target labels

Depth PNGs are uint16 millimetres (depth scale 0.001). The dataset is built in a sibling ``OUT.partial`` folder
and moved into place at the end, so an interrupted run never leaves a half-written dataset at OUT.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, model_validator

from socketedge.data.imageio import write_image
from socketedge.errors import ConfigError
from socketedge.synth.generate import ImageSpec, render_batch
from socketedge.synth.scene import SceneConfig
from socketedge.synth.shapes import CATALOGUE, DEFAULT_TASK_CLASSES, DEFAULT_TI_CLASSES, SHAPES
from socketedge.utils.atomic import write_json_atomic
from socketedge.utils.progress import make_progress

SYNTH_MANIFEST = "synth.json"
SYNTH_VERSION = 1
DEPTH_SCALE = 0.001
SPLITS = ("source", "ti", "target", "eval")
CHUNK = 16  # images rendered together (one class): large enough to amortise numpy overhead


class SynthConfig(BaseModel):
    task_classes: list[str] = Field(default_factory=lambda: list(DEFAULT_TASK_CLASSES))
    ti_classes: list[str] = Field(default_factory=lambda: list(DEFAULT_TI_CLASSES))
    per_class: int = Field(100, ge=1, description="labeled RGB source images per task class")
    target_per_class: int | None = Field(None, ge=1, description="unlabeled target images per task class "
                                         "(default: per_class)")
    ti_per_class: int | None = Field(None, ge=1, description="TI pairs per TI class (default: per_class)")
    eval_per_class: int | None = Field(None, ge=1, description="held-out scenes per task class "
                                       "(default: per_class // 2, at least 1)")
    size: int = Field(96, ge=16, le=1024)
    seed: int = 0
    scene: SceneConfig = Field(default_factory=SceneConfig)

    @model_validator(mode="after")
    def _check(self) -> "SynthConfig":
        for name in self.task_classes + self.ti_classes:
            if name not in SHAPES:
                raise ValueError(SHAPES.unknown_message(name))
        for what, names in (("task", self.task_classes), ("TI", self.ti_classes)):
            if len(set(names)) != len(names):
                raise ValueError(f"{what} classes repeat a name: {', '.join(names)}")
        if len(self.task_classes) < 2:
            raise ValueError("need at least 2 task classes")
        if not self.ti_classes:
            raise ValueError("need at least 1 task-irrelevant (TI) class")
        both = sorted(set(self.task_classes) & set(self.ti_classes))
        if both:
            raise ValueError(f"task and TI classes must be disjoint; {', '.join(both)} is in both")
        return self

    def counts(self) -> dict[str, int]:
        """Images per class of each split."""
        return {"source": self.per_class, "ti": self.ti_per_class or self.per_class,
                "target": self.target_per_class or self.per_class,
                "eval": self.eval_per_class or max(1, self.per_class // 2)}


def make_config(**values) -> SynthConfig:
    """Validate options into a SynthConfig; a bad value becomes a one-line ConfigError."""
    try:
        return SynthConfig(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid synth setting{' ' + where if where else ''}: {msg} "
                          f"(shapes: {', '.join(CATALOGUE)})") from None


@dataclass
class SynthResult:
    out: Path
    counts: dict[str, int]  # images per split
    seconds: float
    manifest: dict = field(repr=False, default_factory=dict)

    @property
    def images(self) -> int:
        return sum(self.counts.values())


def target_stem(seed: int, cls: str, index: int) -> str:
    """An opaque, stable file name for an unlabeled target image (the class is not readable from it)."""
    return hashlib.blake2b(f"{seed}/{cls}/{index}".encode(), digest_size=6).hexdigest()


def _jobs(cfg: SynthConfig) -> list[tuple[str, str, range]]:
    counts = cfg.counts()
    jobs = []
    for split in SPLITS:
        for cls in cfg.ti_classes if split == "ti" else cfg.task_classes:
            n = counts[split]
            jobs += [(split, cls, range(i, min(i + CHUNK, n))) for i in range(0, n, CHUNK)]
    return jobs


def _write_chunk(root: Path, cfg: SynthConfig, split: str, cls: str, indices: range) -> dict[str, str]:
    rgb, depth = render_batch([ImageSpec(split, cls, i, cfg.seed) for i in indices], cfg.size, cfg.scene)
    labels = {}
    for k, i in enumerate(indices):
        stem = f"{cls}_{i:05d}"
        if split == "source":
            write_image(root / "source" / cls / f"{stem}.png", rgb[k])
        elif split in ("ti", "eval"):
            write_image(root / split / "rgb" / cls / f"{stem}.png", rgb[k])
            write_image(root / split / "depth" / cls / f"{stem}.png", depth[k])
        else:
            stem = target_stem(cfg.seed, cls, i)
            write_image(root / "target" / "depth" / f"{stem}.png", depth[k])
            labels[stem] = cls
    return labels


def _prepare_out(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out} is a file; expected a new or empty directory")
    if not any(out.iterdir()):
        return
    if not (out / SYNTH_MANIFEST).is_file():
        raise ConfigError(f"--out {out} is not empty and was not written by `socketedge synth`; "
                          "choose a new directory")
    if not overwrite:
        raise ConfigError(f"--out {out} already holds a synthetic dataset; pass --overwrite to replace it "
                          "or choose a new directory")


def synthesize(out: Path, task_classes: list[str] | None = None, ti_classes: list[str] | None = None,
               per_class: int | None = None, size: int | None = None, seed: int | None = None, *,
               config: SynthConfig | None = None, overwrite: bool = False, workers: int | None = None,
               progress: bool = True, **more) -> SynthResult:
    """Render and write the whole dataset (see the module docstring for the layout).

    Pass either the common options or a full ``config``; ``more`` takes the other SynthConfig fields
    (target_per_class, ti_per_class, eval_per_class, scene). ``workers`` threads render chunks in parallel.
    """
    if config is None:
        config = make_config(task_classes=task_classes, ti_classes=ti_classes, per_class=per_class, size=size,
                             seed=seed, **more)
    elif any(v is not None for v in (task_classes, ti_classes, per_class, size, seed)) or more:
        raise ValueError("pass either config or individual options, not both")
    out = Path(out)
    _prepare_out(out, overwrite)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)

    jobs = _jobs(config)
    counts = {s: 0 for s in SPLITS}
    for split, _, idx in jobs:
        counts[split] += len(idx)
    total = sum(counts.values())
    labels: dict[str, str] = {}
    start = time.perf_counter()
    workers = workers or min(8, os.cpu_count() or 1)
    try:
        with make_progress(disable=not progress) as bar, ThreadPoolExecutor(workers) as pool:
            task = bar.add_task(f"synth {config.size}px", total=total, terms="")
            futures = [(pool.submit(_write_chunk, partial, config, *job), len(job[2])) for job in jobs]
            done = 0
            for fut, n in futures:
                labels.update(fut.result())
                done += n
                bar.update(task, advance=n, terms=f"{done / (time.perf_counter() - start):.0f} img/s")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start

    from socketedge import __version__

    manifest = {
        "format_version": SYNTH_VERSION,
        "generator": f"socketedge {__version__}",
        "task_classes": config.task_classes,
        "ti_classes": config.ti_classes,
        "per_class": config.counts(),
        "images": counts,
        "depth_scale": DEPTH_SCALE,
        "layout": {"source": "source/<class>/<stem>.png (rgb)",
                   "ti": "ti/{rgb,depth}/<ti_class>/<stem>.png",
                   "target": "target/depth/<stem>.png (unlabeled)",
                   "eval": "eval/{rgb,depth}/<class>/<stem>.png"},
        "config": config.model_dump(mode="json"),
        "target_labels": dict(sorted(labels.items())),
    }
    if len(labels) != counts["target"]:
        raise RuntimeError("target file names collided; change the seed")
    write_json_atomic(partial / SYNTH_MANIFEST, manifest)
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return SynthResult(out, counts, seconds, manifest)


def read_manifest(root: Path) -> dict:
    """The synth.json of a synthetic dataset."""
    import json

    from socketedge.errors import DataError

    path = Path(root) / SYNTH_MANIFEST
    if not path.is_file():
        raise DataError(f"{root} is not a synthetic dataset (no {SYNTH_MANIFEST}); run `socketedge synth` first")
    return json.loads(path.read_text())
