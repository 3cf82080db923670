"""EPFL RGB-NIR Scene (Brown & Süsstrunk, CVPR 2011) as released: one folder per category (country, field,
forest, indoor, mountain, oldbuilding, street, urban, water), each holding ``NNNN_rgb.<ext>`` / ``NNNN_nir.<ext>``
pairs (TIFF in the release; any image extension is accepted).

SOCKET (ECCV 2022) uses 6 categories as the task and the other 3 as task-irrelevant pairs. The paper's choice of
the 6 could not be confirmed from public sources available to us, so the split is configurable: by name
(``task_classes`` / ``ti_classes``) or drawn by ``seed`` (``num_task`` = 6 by default). import.json records
which rule produced the split.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from socketedge.data.imageio import is_image
from socketedge.data.importers.base import DomainData, ImportPlan, PairSpec, read_nir_u8, require_root, split_classes
from socketedge.errors import DataError

DOMAIN = "nirscene"
PAPER_NUM_TASK = 6
_NAME = re.compile(r"^(?P<id>.+)_(?P<kind>rgb|nir)$", re.IGNORECASE)


class RgbNirOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_classes: list[str] | None = None
    ti_classes: list[str] | None = None
    num_task: int = Field(PAPER_NUM_TASK, ge=2)
    seed: int = 0


def scan_category(folder: Path) -> tuple[list[PairSpec], Counter]:
    found: dict[str, dict[str, Path]] = {}
    for p in sorted(folder.iterdir()):
        m = _NAME.match(p.stem) if p.is_file() and is_image(p) else None
        if m:
            found.setdefault(m["id"], {})[m["kind"].lower()] = p
    pairs, skipped = [], Counter()
    for ident, kinds in sorted(found.items()):
        if "rgb" in kinds and "nir" in kinds:
            pairs.append(PairSpec(kinds["rgb"], kinds["nir"], folder.name, ident))
        else:
            skipped[f"{'nir' if 'rgb' in kinds else 'rgb'} partner missing"] += 1
    return pairs, skipped


def plan_rgbnir(root: Path, options: RgbNirOptions) -> ImportPlan:
    root = require_root(root, "RGB-NIR Scene")
    categories = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    pairs, notes, classes = [], [], []
    for d in categories:
        found, skipped = scan_category(d)
        for why, n in sorted(skipped.items()):
            notes.append(f"{d.name}: skipped {n} image(s): {why}")
        if found:
            pairs += found
            classes.append(d.name)
    if not classes:
        raise DataError(f"{root} holds no category folders with NNNN_rgb.<ext> / NNNN_nir.<ext> pairs; pass the "
                        f"folder that contains country/, field/, forest/, … of the RGB-NIR Scene release")
    split = split_classes(classes, root, task=options.task_classes, ti=options.ti_classes,
                          num_task=options.num_task, seed=options.seed)
    if not split.ti:
        notes.append("no task-irrelevant classes: SOCKET's TI term has no data (SHOT/DECISION still run)")
    extra = {"rgbnir": {"paper_num_task": PAPER_NUM_TASK, "paper_num_ti": 3,
                        "paper_split_confirmed": False}}
    return ImportPlan("rgbnir", root, "nir", [DomainData(DOMAIN, pairs)], split, read_nir_u8,
                      options=options.model_dump(), notes=notes, extra=extra)
