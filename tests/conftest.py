"""Shared fixtures: tiny generated datasets in the real on-disk layouts, the CLI runner."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("COLUMNS", "200")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def class_image(label: int, rng: np.random.Generator, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 HxWx3, depth uint16 HxW mm): class = a bright square's quadrant + its colour; depth = a box
    at a class-dependent distance. Easy for RGB, and a different-looking but learnable signal in depth."""
    rgb = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    depth = np.full((size, size), 3000, np.uint16) + rng.integers(0, 30, (size, size)).astype(np.uint16)
    q = size // 2
    y, x = divmod(label % 4, 2)
    jitter = rng.integers(0, q // 3 + 1, 2)
    y0, x0 = y * q + jitter[0], x * q + jitter[1]
    side = q - q // 3
    colour = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220], [220, 220, 40]][label % 4], np.uint8)
    rgb[y0:y0 + side, x0:x0 + side] = colour
    depth[y0:y0 + side, x0:x0 + side] = 800 + 400 * (label % 4)
    return rgb, depth


def write_dataset(root: Path, classes: list[str], per_class: int, modalities=("rgb",), seed: int = 0,
                  size: int = 40, labeled: bool = True, start: int = 0) -> Path:
    """Write ROOT/<modality>/[<class>/]<stem>.png for each modality (or ROOT/<class>/… for a single rgb)."""
    from socketedge.data.imageio import write_image

    rng = np.random.default_rng(seed)
    for ci, cname in enumerate(classes):
        for i in range(per_class):
            rgb, depth = class_image(ci, rng, size)
            stem = f"{cname}_{start + i:04d}"
            for m in modalities:
                base = root / m if len(modalities) > 1 or m != "rgb" else root
                folder = base / cname if labeled else base
                write_image(folder / f"{stem}.png", rgb if m == "rgb" else depth)
    return root


@pytest.fixture
def make_dataset(tmp_path):
    def make(name: str = "data", classes=("a", "b", "c", "d"), per_class: int = 8, modalities=("rgb",), **kw):
        return write_dataset(tmp_path / name, list(classes), per_class, tuple(modalities), **kw)

    return make


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """Run ``socketedge ARGS`` in-process through the real entry point (error handling and exit codes included)."""

    def run(*args) -> CliResult:
        from socketedge.cli import main

        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run
