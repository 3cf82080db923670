"""SUN RGB-D (Song, Lichtenberg, Xiao, CVPR 2015) as released: ``SUNRGBD/<sensor>/…/<scene>/`` with
``image/*.jpg``, ``depth/*.png`` (and ``depth_bfx/*.png``, the refined depth), ``scene.txt`` (the scene class).

Sensors (the paper's four domains): kv1 (Kinect v1), kv2 (Kinect v2), realsense, xtion. Scene folders sit at
varying depths (kv1/NYUdata/NYU0001, xtion/sun3ddata/<seq>/<frame>/…); every folder holding ``scene.txt`` and
``image/`` is one sample.

Depth encoding: the release stores depth PNGs with a 3-bit circular shift. The official SUNRGBD toolbox
(readData/read3dPoints.m and read3dPoints_bfx.m) decodes both ``depth/`` and ``depth_bfx/`` with
``bitor(bitshift(depthVis,-3), bitshift(depthVis,16-3))`` and then divides by 1000 to get metres, i.e. the
unshifted value ``(v >> 3) | (v << 13)`` (16-bit) is millimetres. We write that value, so depth_scale = 0.001.

Class split (SOCKET, ECCV 2022, and its reference README): the scene classes common to all four sensors are the
task (the paper uses 17); the pairs of every other class, pooled over sensors, are the task-irrelevant data. We
derive "common" from the data: a class is common when every sensor has at least ``min_per_sensor`` samples of it
(``idk``, SUN RGB-D's "unlabelled", never counts as a task class). The per-sensor counts are printed and stored in
import.json so the derivation can be checked against the paper's 17; ``task_classes`` overrides it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from socketedge.data.imageio import is_image, read_image
from socketedge.data.importers.base import ClassSplit, DomainData, ImportPlan, PairSpec, require_root, split_classes
from socketedge.errors import ConfigError, DataError

SENSORS = ("kv1", "kv2", "realsense", "xtion")
UNLABELLED = "idk"
PAPER_TASK_CLASS_COUNT = 17
DEPTH_SCALE = 0.001  # metres per unit of the unshifted depth (the toolbox divides by 1000)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class SunRgbdOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_classes: list[str] | None = None
    min_per_sensor: int = Field(1, ge=1)
    depth_source: Literal["depth", "bfx"] = "depth"
    sensors: list[str] = Field(default_factory=lambda: list(SENSORS))


def unshift_depth(raw: np.ndarray) -> np.ndarray:
    """SUN RGB-D PNG value → millimetres: undo the release's 3-bit circular shift (uint16 arithmetic)."""
    if raw.dtype != np.uint16:
        raise DataError(f"SUN RGB-D depth must be uint16, got {raw.dtype}")
    return (raw >> np.uint16(3)) | (raw << np.uint16(13))


def read_sunrgbd_depth(path: Path) -> np.ndarray:
    return unshift_depth(read_image(path, "depth"))


def _first_image(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))
    return files[0] if files else None


def _scene_label(path: Path) -> str:
    text = path.read_text(errors="replace").strip().lower()
    return _SAFE.sub("_", text.split("\n")[0].strip()) if text else ""


def scan_sensor(sensor_dir: Path, depth_folder: str) -> tuple[list[PairSpec], Counter]:
    """Every scene folder under ``sensor_dir``; skipped ones counted by reason."""
    pairs, skipped = [], Counter()
    for dirpath, dirnames, filenames in os.walk(sensor_dir):
        dirnames.sort()
        if "scene.txt" not in filenames or "image" not in dirnames:
            continue
        dirnames[:] = []  # a scene folder's subfolders (annotation/, fullres/, …) are part of that scene
        scene = Path(dirpath)
        label = _scene_label(scene / "scene.txt")
        rgb = _first_image(scene / "image")
        depth = _first_image(scene / depth_folder)
        if not label:
            skipped["empty scene.txt"] += 1
            continue
        if rgb is None or depth is None:
            skipped[f"no image/ or {depth_folder}/ file"] += 1
            continue
        stem = _SAFE.sub("_", "__".join(scene.relative_to(sensor_dir).parts))
        pairs.append(PairSpec(rgb, depth, label, stem))
    return pairs, skipped


def plan_sunrgbd(root: Path, options: SunRgbdOptions) -> ImportPlan:
    root = require_root(root, "SUN RGB-D")
    unknown = [s for s in options.sensors if s not in SENSORS]
    if unknown:
        raise ConfigError(f"unknown SUN RGB-D sensor {unknown[0]!r}; sensors: {', '.join(SENSORS)}")
    if not any((root / s).is_dir() for s in SENSORS) and (root / "SUNRGBD").is_dir():
        root = root / "SUNRGBD"  # the folder the release zip unpacks into
    present = [s for s in SENSORS if (root / s).is_dir()]
    if not present:
        raise DataError(f"{root} holds none of the sensor folders {', '.join(SENSORS)}; "
                        f"pass the SUNRGBD/ folder of the official release")
    missing = [s for s in options.sensors if s not in present]
    if missing:
        raise DataError(f"{root} has no {missing[0]}/ folder (found {', '.join(present)}); "
                        f"pass the full SUNRGBD/ folder or limit the sensors with --sensors")
    depth_folder = "depth_bfx" if options.depth_source == "bfx" else "depth"
    domains, notes, per_sensor = [], [], {}
    for s in options.sensors:
        pairs, skipped = scan_sensor(root / s, depth_folder)
        if not pairs:
            raise DataError(f"{root / s} holds no scene folders (<scene>/scene.txt with image/ and {depth_folder}/)")
        for why, n in sorted(skipped.items()):
            notes.append(f"{s}: skipped {n} scene folder(s): {why}")
        domains.append(DomainData(s, pairs, DEPTH_SCALE))
        per_sensor[s] = Counter(p.label for p in pairs)

    all_classes = sorted(set().union(*per_sensor.values()))
    common = sorted(c for c in all_classes if c != UNLABELLED
                    and all(per_sensor[s][c] >= options.min_per_sensor for s in options.sensors))
    if options.task_classes:
        split = split_classes(all_classes, root, task=options.task_classes)
        absent = [c for c in split.task if any(per_sensor[s][c] == 0 for s in options.sensors)]
        if absent:
            notes.append(f"task class {absent[0]!r} has no samples in some sensor; its domains lack that class")
    else:
        if len(common) < 2:
            raise DataError(f"fewer than 2 scene classes have ≥{options.min_per_sensor} samples in every sensor "
                            f"of {root}; lower --min-per-sensor or name --task-classes")
        split = ClassSplit(common, [c for c in all_classes if c not in common],
                           f"classes with ≥{options.min_per_sensor} sample(s) in each of {', '.join(options.sensors)}"
                           f" ({UNLABELLED!r} excluded); every other class is task-irrelevant")
        if len(common) != PAPER_TASK_CLASS_COUNT and set(options.sensors) == set(SENSORS):
            notes.append(f"derived {len(common)} common classes; the paper uses {PAPER_TASK_CLASS_COUNT} — "
                         f"check the per-sensor counts and adjust --min-per-sensor or --task-classes")
    extra = {"sunrgbd": {
        "sensors": options.sensors,
        "depth_folder": depth_folder,
        "depth_decoding": "(v >> 3) | (v << 13) on uint16 = millimetres (SUNRGBD toolbox read3dPoints.m)",
        "min_per_sensor": options.min_per_sensor,
        "derived_common_classes": common,
        "paper_task_class_count": PAPER_TASK_CLASS_COUNT,
    }}
    return ImportPlan("sunrgbd", root, "depth", domains, split, read_sunrgbd_depth,
                      options=options.model_dump(), notes=notes, extra=extra)
