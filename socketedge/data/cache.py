"""Decode a folder once — into an in-memory tensor, or into the disk cache when the run's sets exceed a memory
budget — then batch and augment with tensor ops (no DataLoader).

Frames stay in raw sensor units (uint8 colour/NIR/thermal, uint16 depth) so the model-side `Preprocess` is
the single place where units become model input, in training, eval and the exported graph alike. Training
decodes at a fixed square size (``decode_set``); evaluation reads frames at their native resolution
(``native_batches``), as a camera or ``folder://`` source hands them to the exported graph.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from socketedge.data.disk_cache import DiskFrames, cached_frames
from socketedge.data.folders import ImageSet
from socketedge.data.imageio import read_image
from socketedge.data.preprocess import resize
from socketedge.errors import ConfigError, DataError
from socketedge.utils.progress import console, make_progress

TRAIN_RESIZE_RATIO = 256 / 224  # resize-then-random-crop, as in the SHOT/SOCKET recipes


DEFAULT_MEMORY_BUDGET_GB = 1.0  # decoded sets of one run beyond this go to the disk cache (data/disk_cache.py)
GIB = 2**30


@dataclass
class FrameTensor:
    """N frames of one modality at a common size, with optional labels and their keys.

    ``raw`` is an in-memory tensor, or `DiskFrames` (the disk cache) indexed the same way: ``raw[idx]`` gives a
    tensor of those frames, ``len``/``shape`` as a tensor's; ``frame_rows`` takes rows of either unread."""

    raw: torch.Tensor | DiskFrames  # (N, C, H, W) uint8 or uint16
    labels: torch.Tensor | None
    keys: list[str]
    modality: str

    def __len__(self) -> int:
        return self.raw.shape[0]

    @property
    def on_disk(self) -> bool:
        return isinstance(self.raw, DiskFrames)


@dataclass
class FrameStorage:
    """Where the decoded sets of one run live: in memory while their sum fits ``memory_budget_gb``, the rest in
    the disk cache under ``cache_dir`` (default: data.disk_cache.default_cache_dir()). A budget of 0 puts every set
    on disk. Both give the same frames, so the same seed gives the same weights either way."""

    memory_budget_gb: float = DEFAULT_MEMORY_BUDGET_GB
    cache_dir: Path | None = None
    used_bytes: int = 0

    @classmethod
    def of(cls, memory_budget_gb: float | None, cache_dir: Path | None) -> "FrameStorage":
        budget = DEFAULT_MEMORY_BUDGET_GB if memory_budget_gb is None else memory_budget_gb
        if not budget >= 0:
            raise ConfigError(f"--memory-budget {budget:g}: expected GiB >= 0 (0: every decoded set on disk)")
        return cls(budget, Path(cache_dir).expanduser() if cache_dir is not None else None)

    def fits(self, nbytes: int) -> bool:
        """Reserve ``nbytes`` of the budget if they fit."""
        if self.used_bytes + nbytes > self.memory_budget_gb * GIB:
            return False
        self.used_bytes += nbytes
        return True


def frame_rows(raw: torch.Tensor | DiskFrames, rows: slice) -> torch.Tensor | DiskFrames:
    """Rows of in-memory or disk-cache frames without reading them (a tensor view, or a DiskFrames view)."""
    if isinstance(raw, DiskFrames):
        return raw.view(rows.start, rows.stop)
    return raw[rows]


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _decode(path, modality: str, size: int | None) -> np.ndarray:
    """(H, W, C) raw frame; resized to size×size unless ``size`` is None (native resolution)."""
    img = read_image(path, modality)
    img = img if img.ndim == 3 else img[..., None]
    if size is not None:
        # the graph's resize (data.preprocess.resize), in sensor units, rounded back to the raw dtype: training
        # frames look like what the deployed model is fed (Preprocess(sized=True) does not resize them again)
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
        x = resize(x, size)[0].permute(1, 2, 0).round_()
        img = x.clamp_(0, np.iinfo(img.dtype).max).numpy().astype(img.dtype)
    return img


def frame_layout(modality: str, size: int) -> tuple[tuple[int, int, int], np.dtype]:
    """(C, H, W) and dtype of a decoded frame: depth uint16, others uint8; rgb 3 channels, others 1."""
    return (3 if modality == "rgb" else 1, size, size), np.dtype(np.uint16 if modality == "depth" else np.uint8)


DECODE_CHUNK = 256  # frames decoded ahead of the writer: bounds memory whatever the set's size
MAX_LISTED = 20


class UnreadableImages(DataError):
    """Files of one or more sets that cannot be decoded, all of them named (up to MAX_LISTED) in one line."""

    def __init__(self, bad: list[str], total: int, roots: list[str], modalities: list[str]):
        self.bad, self.total, self.roots, self.modalities = bad, total, roots, modalities
        shown = ", ".join(bad[:MAX_LISTED]) + (f" and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED
                                               else "")
        kind = ("16-bit single-channel PNGs" if modalities == ["depth"] else "images")
        super().__init__(f"{len(bad)} of {total} {'/'.join(modalities)} files under {', '.join(roots)} cannot be "
                         f"read as {kind}: {shown}; fix or remove them")

    @classmethod
    def of(cls, bad: list[str], images: ImageSet) -> "UnreadableImages":
        return cls(bad, len(images.items), [str(images.root)], [images.modality])

    @classmethod
    def merge(cls, errors: list["UnreadableImages"], total: int) -> "UnreadableImages":
        unique = lambda xs: list(dict.fromkeys(xs))  # noqa: E731
        return cls([b for e in errors for b in e.bad], total,
                   unique(r for e in errors for r in e.roots), unique(m for e in errors for m in e.modalities))


def _decode_all(images: ImageSet, size: int, put, desc: str, show_progress: bool) -> None:
    """Decode every image in order into ``put(i, (C, size, size) array)``; unreadable files are collected and
    reported together, by name, once every file has been tried."""
    items, modality = images.items, images.modality
    n = len(items)
    bad: list[str] = []

    def one(it) -> np.ndarray | None:
        try:
            return _decode(it.path, modality, size).transpose(2, 0, 1)
        except DataError:
            return None

    blank = np.zeros(*frame_layout(modality, size))
    with (make_progress(transient=True, disable=not show_progress or n < 200, rate_unit="frames") as progress,
          ThreadPoolExecutor(_workers()) as pool):  # OpenCV releases the GIL while decoding
        task = progress.add_task(desc, total=n, terms="")
        for start in range(0, n, DECODE_CHUNK):
            chunk = items[start:start + DECODE_CHUNK]
            for i, (it, img) in enumerate(zip(chunk, pool.map(one, chunk)), start):
                if img is None:
                    bad.append(str(it.path))
                    img = blank
                put(i, img)
                progress.advance(task)
    if bad:
        raise UnreadableImages.of(bad, images)


def decode_set(images: ImageSet, size: int, desc: str | None = None, show_progress: bool = True,
               storage: FrameStorage | None = None) -> FrameTensor:
    """Decode every image of ``images`` resized to size×size: one (N, C, size, size) tensor when it fits
    ``storage``'s memory budget, else the disk cache (built once, reused by later runs over the same files)."""
    storage = storage if storage is not None else FrameStorage()
    n = len(images.items)
    shape, dtype = frame_layout(images.modality, size)
    desc = desc or f"decoding {images.modality}"
    nbytes = n * int(np.prod(shape)) * dtype.itemsize
    if storage.fits(nbytes):
        out = np.empty((n, *shape), dtype=dtype)  # filled in place: never a second copy of the set

        def put(i, img):
            out[i] = img

        _decode_all(images, size, put, desc, show_progress)
        raw = torch.from_numpy(out)
    else:
        t0 = time.perf_counter()
        raw, built = cached_frames([it.path for it in images.items], images.modality, shape, dtype,
                                   lambda put: _decode_all(images, size, put, desc + " to the disk cache",
                                                           show_progress),
                                   storage.cache_dir, f"{n} {images.modality} frames")
        if show_progress and built:
            seconds = time.perf_counter() - t0
            console.print(f"cached {n} {images.modality} frames ({nbytes / GIB:.2f} GiB) in {raw.path.parent} "
                          f"at {n / max(seconds, 1e-9):,.0f} frames/s", highlight=False)
    labels = None
    if images.labeled:
        labels = torch.tensor([it.label for it in images.items], dtype=torch.long)
    return FrameTensor(raw, labels, [it.key for it in images.items], images.modality)


def decode_sets(specs: Sequence[tuple[ImageSet, int, str]], show_progress: bool = True,
                storage: FrameStorage | None = None) -> list[FrameTensor]:
    """``decode_set`` of each (images, size, desc), every set tried before unreadable files are reported: the
    files of all of them in one error (the sets of one folder given on the command line)."""
    out, errors = [], []
    for images, size, desc in specs:
        try:
            out.append(decode_set(images, size, desc, show_progress, storage))
        except UnreadableImages as e:
            errors.append(e)
    if errors:
        raise UnreadableImages.merge(errors, sum(len(images.items) for images, _, _ in specs))
    return out


def native_batches(images: ImageSet, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(positions, raw (B, C, H, W)) batches of ``images`` in order, each frame at its native resolution.

    Only one chunk of ``batch_size`` frames is decoded at a time; frames of different sizes in a chunk come out
    as one batch per size (positions say where each frame sits in ``images``). Unreadable files are skipped
    and reported together, by name, after the last batch."""
    bad: list[str] = []

    def one(it) -> np.ndarray | None:
        try:
            return _decode(it.path, images.modality, None)
        except DataError:
            bad.append(str(it.path))
            return None

    with ThreadPoolExecutor(_workers()) as pool:  # OpenCV releases the GIL while decoding
        for start in range(0, len(images.items), batch_size):
            chunk = images.items[start:start + batch_size]
            frames = list(pool.map(one, chunk))
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i, f in enumerate(frames):
                if f is not None:
                    by_shape.setdefault(f.shape, []).append(i)
            for rows in by_shape.values():
                raw = torch.from_numpy(np.stack([frames[i] for i in rows])).permute(0, 3, 1, 2).contiguous()
                yield torch.tensor(rows, dtype=torch.long) + start, raw
    if bad:
        raise UnreadableImages.of(sorted(bad), images)


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
