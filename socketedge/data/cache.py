"""Decode a folder once into an in-memory tensor, then batch and augment with tensor ops (no DataLoader).

Frames stay in raw sensor units (uint8 colour/NIR/thermal, uint16 depth) so the model-side `Preprocess` is
the single place where units become model input, in training, eval and the exported graph alike. Training
decodes at a fixed square size (``decode_set``); evaluation reads frames at their native resolution
(``native_batches``), as a camera or ``folder://`` source hands them to the exported graph.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from socketedge.data.folders import ImageSet
from socketedge.data.imageio import read_image
from socketedge.data.preprocess import resize
from socketedge.utils.progress import make_progress

TRAIN_RESIZE_RATIO = 256 / 224  # resize-then-random-crop, as in the SHOT/SOCKET recipes


@dataclass
class FrameTensor:
    """N frames of one modality at a common size, with optional labels and their keys."""

    raw: torch.Tensor  # (N, C, H, W) uint8 or uint16
    labels: torch.Tensor | None
    keys: list[str]
    modality: str

    def __len__(self) -> int:
        return self.raw.shape[0]


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _decode(path, modality: str, size: int | None) -> np.ndarray:
    """(H, W, C) raw frame; resized to size×size unless ``size`` is None (native resolution)."""
    img = read_image(path, modality)
    img = img if img.ndim == 3 else img[..., None]
    if size is not None:
        # the graph's resize (data.preprocess.resize, applied at every size, as in the graph), in sensor units,
        # rounded back to the raw dtype: training frames look like what the deployed model is fed
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
        x = resize(x, size)[0].permute(1, 2, 0).round_()
        img = x.clamp_(0, np.iinfo(img.dtype).max).numpy().astype(img.dtype)
    return img


def decode_set(images: ImageSet, size: int, desc: str | None = None, show_progress: bool = True) -> FrameTensor:
    """Decode every image of ``images`` resized to size×size into one (N, C, size, size) tensor."""
    n = len(images.items)
    first = _decode(images.items[0].path, images.modality, size)
    out = np.empty((n, *first.shape), dtype=first.dtype)
    out[0] = first
    workers = _workers()
    with make_progress(transient=True, disable=not show_progress or n < 200) as progress:
        task = progress.add_task(desc or f"decoding {images.modality}", total=n, terms="")
        with ThreadPoolExecutor(workers) as pool:  # OpenCV releases the GIL while decoding
            for i, img in enumerate(pool.map(lambda it: _decode(it.path, images.modality, size), images.items[1:]), 1):
                out[i] = img
                progress.advance(task)
    raw = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
    labels = None
    if images.labeled:
        labels = torch.tensor([it.label for it in images.items], dtype=torch.long)
    return FrameTensor(raw, labels, [it.key for it in images.items], images.modality)


def native_batches(images: ImageSet, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(positions, raw (B, C, H, W)) batches of ``images`` in order, each frame at its native resolution.

    Only one chunk of ``batch_size`` frames is decoded at a time; frames of different sizes in a chunk come out
    as one batch per size (positions say where each frame sits in ``images``)."""
    with ThreadPoolExecutor(_workers()) as pool:  # OpenCV releases the GIL while decoding
        for start in range(0, len(images.items), batch_size):
            chunk = images.items[start:start + batch_size]
            frames = list(pool.map(lambda it: _decode(it.path, images.modality, None), chunk))
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i, f in enumerate(frames):
                by_shape.setdefault(f.shape, []).append(i)
            for rows in by_shape.values():
                raw = torch.from_numpy(np.stack([frames[i] for i in rows])).permute(0, 3, 1, 2).contiguous()
                yield torch.tensor(rows, dtype=torch.long) + start, raw


def crop_flip_indices(n: int, size: int, out: int, generator: torch.Generator, flip: bool = True):
    """Per-sample random crop offsets and horizontal flips as gather indices (rows, cols)."""
    oy = torch.randint(0, size - out + 1, (n,), generator=generator)
    ox = torch.randint(0, size - out + 1, (n,), generator=generator)
    ar = torch.arange(out)
    rows = oy[:, None] + ar
    cols = ox[:, None] + ar
    if flip:
        flips = torch.rand(n, generator=generator) < 0.5
        cols = torch.where(flips[:, None], cols.flip(1), cols)
    return rows, cols


def apply_crop(raw: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Gather crops from (B, C, H, W) with per-sample (B, S) row and column indices, in one indexing op."""
    b = torch.arange(raw.shape[0])[:, None, None, None]
    c = torch.arange(raw.shape[1])[None, :, None, None]
    return raw[b, c, rows[:, None, :, None], cols[:, None, None, :]]


def batches(n: int, batch_size: int, generator: torch.Generator | None = None, drop_last: bool = False,
            ) -> list[torch.Tensor]:
    """Index batches of an epoch; shuffled when a generator is given."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    out, start = [], 0
    for f in fractions[:-1]:
        k = int(round(n * f))
        out.append(order[start:start + k])
        start += k
    out.append(order[start:])
    return out
