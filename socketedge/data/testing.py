"""Tiny generated datasets in the real on-disk layouts, for tests, benchmarks and examples (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
