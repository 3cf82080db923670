"""The five SOCKET loss terms as pure functions of tensors (names as in logs and metrics).

ent  mean entropy of the ensemble prediction (minimised)
div  entropy of the batch-mean prediction (maximised: enters the loss as -div)
pl   cross-entropy of the ensemble prediction against pseudo-labels
ti   Σ_k ‖ζ_k (ψ_k − f_k(x_TI))‖²: ζ-weighted squared feature distance on task-irrelevant pairs, averaged
     over pairs
bn   Σ_layers ‖Σ_k ζ_k μ_src − Σ_k ζ_k μ̂‖ + ‖Σ_k ζ_k σ²_src − Σ_k ζ_k σ̂²‖, every layer weighted 1

The batch-averaging terms take an optional ``mean``: a function returning the mean over dim 0. Left out, it is
the mean over this batch; data-parallel runs pass `DistContext.batch_mean`, the differentiable mean over the
global batch of all ranks (see adapt/distributed.py), so every rank computes the one-process value.
"""

from __future__ import annotations

from typing import Callable

import torch

EPS = 1e-6
BatchMean = Callable[[torch.Tensor], torch.Tensor]


def _mean(x: torch.Tensor, mean: BatchMean | None) -> torch.Tensor:
    return x.mean(dim=0) if mean is None else mean(x)


def mix(zeta: torch.Tensor, member_probs: torch.Tensor) -> torch.Tensor:
    """(K,) ζ on the simplex and (K, B, C) member probabilities → (B, C) ensemble probabilities."""
    return torch.einsum("k,kbc->bc", zeta, member_probs)


def entropy(probs: torch.Tensor, mean: BatchMean | None = None) -> torch.Tensor:
    """Mean over the batch of −Σ_c p log p. Uniform over C classes gives log C."""
    return _mean(-(probs * torch.log(probs + EPS)).sum(dim=1), mean)


def diversity(probs: torch.Tensor, mean: BatchMean | None = None) -> torch.Tensor:
    """Entropy of the batch-mean prediction (to be maximised)."""
    avg = _mean(probs, mean)
    return -(avg * torch.log(avg + EPS)).sum()


def pseudo_label_ce(probs: torch.Tensor, labels: torch.Tensor, mean: BatchMean | None = None) -> torch.Tensor:
    """Cross-entropy −log p_y of (already mixed) probabilities against hard pseudo-labels."""
    return _mean(-torch.log(probs.gather(1, labels[:, None]).squeeze(1) + EPS), mean)


def ti_distance(psi: list[torch.Tensor], feats: list[torch.Tensor], zeta: torch.Tensor,
                mean: BatchMean | None = None) -> torch.Tensor:
    """Σ_k ‖ζ_k (ψ_k − f_k)‖² per pair, averaged over pairs. ψ_k, f_k: (B, D_k)."""
    total = feats[0].new_zeros(())
    for k, (p, f) in enumerate(zip(psi, feats)):
        sq = (zeta[k] * (p - f)).pow(2).sum(dim=1)
        total = total + (sq.mean() if mean is None else mean(sq))
    return total


def bn_stat_distance(src_mean: list[list[torch.Tensor]], src_var: list[list[torch.Tensor]],
                     tgt_mean: list[list[torch.Tensor]], tgt_var: list[list[torch.Tensor]],
                     zeta: torch.Tensor) -> torch.Tensor:
    """BN-statistics term. Outer lists: sources; inner lists: that source's BN layers in order.

    When every source has the same layer shapes (same architecture) the statistics are mixed with ζ before the
    norm, as in the paper. Sources of different architectures have no common layers, so then each source's
    per-layer distances are weighted by its ζ_k instead. Every layer has weight 1 (the reference code's ×10 on
    the first layer is not used: no layer is privileged by the method, and the sum already grows with depth).
    Zero exactly when target batch statistics equal the source running statistics.
    """
    k = len(src_mean)
    shapes = [[t.shape for t in layers] for layers in src_mean]
    if all(s == shapes[0] for s in shapes):
        total = zeta.new_zeros(())
        for layer in range(len(src_mean[0])):
            ms = torch.stack([src_mean[j][layer] for j in range(k)])
            vs = torch.stack([src_var[j][layer] for j in range(k)])
            mt = torch.stack([tgt_mean[j][layer] for j in range(k)])
            vt = torch.stack([tgt_var[j][layer] for j in range(k)])
            total = total + (zeta @ (ms - mt)).norm() + (zeta @ (vs - vt)).norm()
        return total
    total = zeta.new_zeros(())
    for j in range(k):
        per_source = sum(((sm - tm).norm() + (sv - tv).norm())
                         for sm, sv, tm, tv in zip(src_mean[j], src_var[j], tgt_mean[j], tgt_var[j]))
        total = total + zeta[j] * per_source
    return total
