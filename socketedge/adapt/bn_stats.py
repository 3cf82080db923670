"""BatchNorm statistics: the source running statistics copied before adaptation, and hooks that record the batch
mean/variance of the features entering every BatchNorm layer during the target forward pass."""

from __future__ import annotations

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


class BatchStatsRecorder:
    """Forward pre-hooks on every BN layer of one encoder; statistics are kept only while ``recording``."""

    def __init__(self, encoder: nn.Module):
        self.layers = [bn for _, bn in batchnorm_layers(encoder)]
        self.means: list[torch.Tensor] = []
        self.vars: list[torch.Tensor] = []
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

        return hook

    @contextmanager
    def recording(self):
        n = len(self.layers)
        self.means, self.vars = [None] * n, [None] * n
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
