"""DIML/CVL RGB-D sample release (Cho, Min, Kim, Sohn; indoor part, Kinect v2) as released:

    <root>/indoor/{train,test}/{HR,LR}/<NN. Category>/color/<name>_c.png
                                                     /depth_filled/<name>_depth_filled.png

Categories are the numbered scene folders ("11. Bedroom" → class ``bedroom``). Depth PNGs are uint16
millimetres (public loaders divide by 1000 for metres), so depth_scale = 0.001. The outdoor part has no scene
classes (stereo disparity, no categories) and is not imported.

SOCKET (ECCV 2022) uses 6 DIML classes as the task. Which 6, and whether its TI pairs came from DIML's other
classes, could not be confirmed from public sources available to us; the split is therefore configurable by name
or drawn by ``seed`` (``num_task`` = 6), every non-task class becoming TI pairs. import.json records the rule.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from socketedge.data.imageio import is_image
from socketedge.data.importers.base import (
    DomainData,
    ImportPlan,
    PairSpec,
    read_depth_u16,
    require_root,
    split_classes,
)
from socketedge.errors import ConfigError, DataError

DOMAIN = "diml"
PAPER_NUM_TASK = 6
DEPTH_SCALE = 0.001
SPLITS = ("train", "test")
_PREFIX = re.compile(r"^\s*\d+\s*[.\-_]\s*")
_SAFE = re.compile(r"[^a-z0-9._-]+")


class DimlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_classes: list[str] | None = None
    ti_classes: list[str] | None = None
    num_task: int = Field(PAPER_NUM_TASK, ge=2)
    seed: int = 0
    splits: list[str] = Field(default_factory=lambda: list(SPLITS))
    quality: Literal["HR", "LR"] = "LR"
    depth_folder: str = "depth_filled"


def class_name(folder_name: str) -> str:
    """"11. Bedroom" → "bedroom"; "03. Computer Room" → "computer_room"."""
    return _SAFE.sub("_", _PREFIX.sub("", folder_name).strip().lower()).strip("_")


def _indoor_root(root: Path) -> Path:
    if (root / "indoor").is_dir():
        return root / "indoor"
    if any((root / s).is_dir() for s in SPLITS):
        return root
    raise DataError(f"{root} has no indoor/ folder (nor train/ or test/); pass the root of the DIML sample release "
                    f"(…/indoor/train/LR/<NN. Category>/color/*_c.png)")


def scan_category(folder: Path, split: str, depth_folder: str) -> tuple[list[PairSpec], Counter]:
    color, depth = folder / "color", folder / depth_folder
    skipped = Counter()
    if not color.is_dir() or not depth.is_dir():
        raise DataError(f"DIML category folder {folder} needs color/ and {depth_folder}/ subfolders")
    depth_by_name = {}
    for p in depth.iterdir():
        if p.is_file() and is_image(p):
            depth_by_name[p.stem.removesuffix(f"_{depth_folder}")] = p
    pairs = []
    label = class_name(folder.name)
    for p in sorted(color.iterdir()):
        if not (p.is_file() and is_image(p)):
            continue
        name = p.stem.removesuffix("_c")
        d = depth_by_name.get(name)
        if d is None:
            skipped[f"no {depth_folder}/{name}_{depth_folder}.png"] += 1
            continue
        pairs.append(PairSpec(p, d, label, f"{split}_{name}"))
    return pairs, skipped


def plan_diml(root: Path, options: DimlOptions) -> ImportPlan:
    root = require_root(root, "DIML")
    bad = [s for s in options.splits if s not in SPLITS]
    if bad:
        raise ConfigError(f"unknown DIML split {bad[0]!r}; splits: {', '.join(SPLITS)}")
    indoor = _indoor_root(root)
    pairs, notes = [], []
    for split in options.splits:
        base = indoor / split / options.quality
        if not base.is_dir():
            raise DataError(f"{base} does not exist; expected indoor/{split}/{options.quality}/<NN. Category>/ "
                            f"(choose --quality HR|LR and --splits to match your download)")
        for cat in sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")):
            found, skipped = scan_category(cat, split, options.depth_folder)
            pairs += found
            for why, n in sorted(skipped.items()):
                notes.append(f"{split}/{cat.name}: skipped {n} image(s): {why}")
    classes = sorted({p.label for p in pairs})
    if not classes:
        raise DataError(f"{indoor} holds no color/ + {options.depth_folder}/ pairs in its category folders")
    split = split_classes(classes, root, task=options.task_classes, ti=options.ti_classes,
                          num_task=options.num_task, seed=options.seed)
    extra = {"diml": {"quality": options.quality, "splits": options.splits, "depth_folder": options.depth_folder,
                      "paper_num_task": PAPER_NUM_TASK, "paper_split_confirmed": False}}
    return ImportPlan("diml", root, "depth", [DomainData(DOMAIN, pairs, DEPTH_SCALE)], split, read_depth_u16,
                      options=options.model_dump(), notes=notes, extra=extra)
