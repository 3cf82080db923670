"""BatchNorm statistics: the source running statistics copied before adaptation, hooks that record the batch
mean/variance of the features entering every BatchNorm layer during the target forward pass, and the train-mode
rules of adaptation (dropout off, running statistics untouched by the TI pass, re-estimated on the target)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from torch import nn

from socketedge.errors import ModelError
from socketedge.models.source_model import batchnorm_layers


def source_stats(encoder: nn.Module, name: str = "source") -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Copies (never references) of every BN layer's running mean and variance, in module order."""
    layers = batchnorm_layers(encoder)
    if not layers:
        raise ModelError(f"{name} has no BatchNorm layer, so the BN-statistics term has nothing to match; "
                         "use --lambda-d 0 (or --method shot/decision) with this model")
    for lname, bn in layers:
        if bn.running_mean is None:
            raise ModelError(f"{name}: BatchNorm layer {lname!r} tracks no running statistics")
    return ([bn.running_mean.detach().clone() for _, bn in layers],
            [bn.running_var.detach().clone() for _, bn in layers])


def feature_map_layers(encoder: nn.Module) -> list[int]:
    """Positions (in `source_stats` order) of the BatchNorm layers over feature maps (BatchNorm2d/3d): the ones
    the scale-free BN term counts. A bottleneck's BatchNorm1d sees one vector per image, so its batch statistics
    at batch 32 are noisy estimates, and the features it normalises are what the TI term already matches."""
    return [i for i, (_, bn) in enumerate(batchnorm_layers(encoder))
            if isinstance(bn, (nn.BatchNorm2d, nn.BatchNorm3d))]


def set_adapt_mode(module: nn.Module) -> nn.Module:
    """Train mode for adaptation: BatchNorm uses batch statistics, but dropout and stochastic depth are off —
    they would only add noise to the entropy and feature-distance terms, which the source never saw."""
    module.train()
    for m in module.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) or type(m).__name__ == "StochasticDepth":
            m.eval()
    return module


@contextmanager
def running_stats_frozen(modules: list[nn.Module]):
    """BatchNorm normalises with batch statistics (train mode) but leaves its running statistics (and batch
    counter) alone: the TI pass must not move them, they feed pseudo-labels, evaluation and the exported graph."""
    layers = [bn for m in modules for _, bn in batchnorm_layers(m) if bn.track_running_stats]
    for bn in layers:
        bn.track_running_stats = False
    try:
        yield
    finally:
        for bn in layers:
            bn.track_running_stats = True


@torch.no_grad()
def reestimate_running_stats(module: nn.Module, batches) -> None:
    """Replace every BatchNorm layer's running statistics by their plain average over ``batches`` (model inputs),
    forwarded in adaptation train mode; the module is left in eval mode."""
    layers = [bn for _, bn in batchnorm_layers(module) if bn.track_running_stats]
    momenta = [bn.momentum for bn in layers]
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: every batch counts the same
    set_adapt_mode(module)
    try:
        for x in batches:
            module(x)
    finally:
        for bn, momentum in zip(layers, momenta):
            bn.momentum = momentum
        module.eval()


class BatchStatsRecorder:
    """Forward pre-hooks on every BN layer of one encoder; statistics are kept only while ``recording``."""

    def __init__(self, encoder: nn.Module):
        self.layers = [bn for _, bn in batchnorm_layers(encoder)]
        self.means: list[torch.Tensor] = []
        self.vars: list[torch.Tensor] = []
        self.counts: list[int] = []  # values per channel behind each mean (batch × spatial positions)
        self.active = False
        self._handles = [bn.register_forward_pre_hook(self._hook(i)) for i, bn in enumerate(self.layers)]

    def _hook(self, index: int):
        # Keyed by layer position (the order of source_stats), not by call order.
        def hook(module: nn.Module, args) -> None:
            if not self.active:
                return
            x = args[0].float()
            dims = [0] + list(range(2, x.dim()))  # all but the channel dimension
            var, mean = torch.var_mean(x, dim=dims, unbiased=False)
            self.means[index] = mean
            self.vars[index] = var
            self.counts[index] = x.numel() // x.shape[1]

        return hook

    @contextmanager
    def recording(self):
        n = len(self.layers)
        self.means, self.vars, self.counts = [None] * n, [None] * n, [0] * n
        self.active = True
        try:
            yield self
        finally:
            self.active = False
        missing = [i for i, m in enumerate(self.means) if m is None]
        if missing:
            raise RuntimeError(f"BatchNorm layers {missing} were not called in the forward pass")

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


Moments = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def batch_stats(recorders: list[BatchStatsRecorder], moments: Moments | None = None,
                ) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """Per source, per layer: the recorded batch means and variances. With ``moments`` (a data-parallel run's
    `DistContext.moments`) they become those of the global batch of all ranks, every layer of every source
    combined in one call (two small all-reduces per step), differentiably."""
    means = [list(r.means) for r in recorders]
    variances = [list(r.vars) for r in recorders]
    if moments is None:
        return means, variances
    flat_m = torch.cat([m for ms in means for m in ms])
    flat_v = torch.cat([v for vs in variances for v in vs])
    counts = torch.cat([torch.full_like(m, float(c)) for r in recorders for m, c in zip(r.means, r.counts)])
    gm, gv, _ = moments(flat_m, flat_v, counts)
    sizes = [m.numel() for ms in means for m in ms]
    gm_parts, gv_parts = list(gm.split(sizes)), list(gv.split(sizes))
    out_m, out_v, i = [], [], 0
    for ms in means:
        out_m.append(gm_parts[i:i + len(ms)])
        out_v.append(gv_parts[i:i + len(ms)])
        i += len(ms)
    return out_m, out_v
