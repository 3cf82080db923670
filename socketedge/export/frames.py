"""Real target frames for calibration and parity: raw sensor units at their own resolution (the exported graph
resizes them itself), read from a target folder, a paired-folder root or a capture session."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from socketedge.data.folders import target_folder
from socketedge.data.imageio import read_image
from socketedge.utils.progress import make_progress


def load_frames(root: Path, modality: str, limit: int = 64) -> list[np.ndarray]:
    """Up to ``limit`` (H, W) frames spread evenly over the folder (so every class folder is represented)."""
    images = target_folder(Path(root), modality)  # a folder named after another modality is a ConfigError
    items = images.items
    if limit and len(items) > limit:
        picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
        items = [items[i] for i in sorted(set(picks.tolist()))]
    frames = []
    with make_progress(transient=True, disable=len(items) < 200) as progress:
        task = progress.add_task(f"reading {modality} frames", total=len(items), terms="")
        for it in items:
            frame = read_image(it.path, modality)
            frames.append(frame)
            progress.advance(task)
    return frames


def as_batch(frames: list[np.ndarray]) -> np.ndarray:
    """Frames of one size, (H, W) single-channel or (H, W, 3) colour, as the graph's (B, C, H, W) input."""
    x = np.stack(frames)
    return x[:, None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def batches_of(frames: list[np.ndarray], batch: int) -> list[np.ndarray]:
    """(B, C, H, W) batches. Batches need one frame size, so they are cut from the most common size; a short
    set is completed by cycling through its frames, so batch ``batch`` always runs at least once."""
    if batch == 1:
        return [as_batch([f]) for f in frames]
    shape, _ = Counter(f.shape for f in frames).most_common(1)[0]
    same = [f for f in frames if f.shape == shape]
    count = max(1, len(same) // batch)
    picks = [same[i % len(same)] for i in range(count * batch)]
    return [as_batch(picks[i:i + batch]) for i in range(0, len(picks), batch)]


def synthetic_frames(modality: str, size: tuple[int, int], count: int, seed: int = 0) -> list[np.ndarray]:
    """Random frames in the sensor's value range, for numerical parity when no target data is at hand (only
    for fp32/fp16: int8 calibration always needs real frames)."""
    rng = np.random.default_rng(seed)
    if modality == "depth":
        return [rng.integers(0, 6000, size, dtype=np.uint16) for _ in range(count)]
    shape = (*size, 3) if modality == "rgb" else size
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]
