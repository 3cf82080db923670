"""The evaluation loop: every member's features, logits and class probabilities over a set of frames.

`eval`, the adaptation's pseudo-labels and per-epoch accuracy, and its TI / gap encodings all go through
``predict``. Frames are raw sensor units: an ``ImageSet`` is read a chunk at a time at each frame's native
resolution (never held whole), or an in-memory raw tensor is batched. Each member's ``Preprocess`` then makes
the model input in the forward pass — the same module the exported graph is built from, fed the same raw frame
that ``socketedge run`` feeds the graph — so a frame gets the same prediction in all of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from socketedge.data.cache import native_batches
from socketedge.data.disk_cache import DiskFrames
from socketedge.data.folders import ImageSet
from socketedge.errors import DataError
from socketedge.models.ensemble import Ensemble, Member, member_outputs
from socketedge.utils.progress import make_progress


@dataclass
class Predictions:
    member_logits: torch.Tensor  # (K, N, C) per-member classifier outputs, on the CPU
    zeta: torch.Tensor  # (K,) the mixing weights of ``probs``
    features: list[torch.Tensor] | None = None  # K × (N, D_k) encoder features, when asked for

    @property
    def member_probs(self) -> torch.Tensor:
        """(K, N, C) per-member class probabilities."""
        return self.member_logits.softmax(dim=-1)

    @property
    def probs(self) -> torch.Tensor:
        """(N, C) Σ_k ζ_k · p_k, the ensemble's output."""
        return torch.einsum("k,kbc->bc", self.zeta, self.member_probs)

    def __len__(self) -> int:
        return self.member_logits.shape[1]


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent of predicted class indices: the number `eval` and `adapt` report."""
    return 100.0 * int((pred == labels).sum()) / max(labels.numel(), 1)


@contextmanager
def eval_mode(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Eval mode inside, every submodule's own train/eval flag restored after (a training loop may have set
    dropout to eval within a training model)."""
    flags = [(m, m.training) for mod in modules for m in mod.modules()]
    for mod in modules:
        mod.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training


def _batches(frames: torch.Tensor | DiskFrames | ImageSet, batch_size: int,
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(frames, ImageSet):
        yield from native_batches(frames, batch_size)
        return
    for start in range(0, frames.shape[0], batch_size):  # a slice of DiskFrames reads just those rows
        raw = frames[start:start + batch_size]
        yield torch.arange(start, start + raw.shape[0]), raw


@torch.no_grad()
def predict(model: Ensemble | Sequence[Member], frames: torch.Tensor | DiskFrames | ImageSet,
            device: torch.device | str = "cpu", batch_size: int = 64, zeta: torch.Tensor | None = None, features: bool = False,
            preprocess: Sequence[nn.Module] | None = None, desc: str | None = None,
            show_progress: bool = False) -> Predictions:
    """Run every member over ``frames`` (raw (N, C, H, W) as data.cache decodes them, in memory or in the disk
    cache, or an ImageSet read at native resolution) in batches, in eval mode without gradients; results on the
    CPU in the order of ``frames``.

    ``zeta``: the weights of ``Predictions.probs`` (default: the ensemble's ζ, equal weights for a member list).
    ``features``: also return each member's encoder features. ``preprocess``: one module per member that
    replaces its own preprocessing (e.g. RGB statistics for the RGB side of TI pairs)."""
    members = list(model.members) if isinstance(model, Ensemble) else list(model)
    if zeta is None:
        zeta = model.zeta if isinstance(model, Ensemble) else torch.full((len(members),), 1.0 / len(members))
    native = isinstance(frames, ImageSet)  # else decoded by data.cache at a size: not resized twice
    n = len(frames) if native else frames.shape[0]
    if n == 0:
        raise DataError("no frames to evaluate")
    device = torch.device(device)
    logits: torch.Tensor | None = None
    feats: list[torch.Tensor] = []
    with (eval_mode([*members, *(preprocess or [])]),
          make_progress(transient=True, disable=not show_progress or n < 200) as progress):
        task = progress.add_task(desc or "evaluating", total=n, terms="")
        for rows, raw in _batches(frames, batch_size):
            f, lg = member_outputs(members, raw.to(device), preprocess, sized=not native)
            if logits is None:  # sizes are known from the first batch
                logits = torch.empty((lg.shape[0], n, lg.shape[2]))
                feats = [torch.empty((n, fk.shape[1])) for fk in f] if features else []
            logits[:, rows] = lg.cpu()
            for out, fk in zip(feats, f):
                out[rows] = fk.float().cpu()
            progress.advance(task, len(rows))
    return Predictions(logits, torch.as_tensor(zeta, dtype=torch.float32).detach().cpu(),
                       feats if features else None)
