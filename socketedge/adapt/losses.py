"""The five SOCKET loss terms as pure functions of tensors (names as in logs and metrics).

ent  mean entropy of the ensemble prediction (minimised)
div  entropy of the batch-mean prediction (maximised: enters the loss as -div)
pl   cross-entropy of the ensemble prediction against pseudo-labels
ti   Σ_k ‖ζ_k (ψ_k − f_k(x_TI))‖²: ζ-weighted squared feature distance on task-irrelevant pairs, averaged
     over pairs
bn   Σ_layers ‖Σ_k ζ_k μ_src − Σ_k ζ_k μ̂‖ + ‖Σ_k ζ_k σ²_src − Σ_k ζ_k σ̂²‖, every layer weighted 1

`ti` and `bn` come in two forms (``AdaptConfig.term_scale``):

- ``scaled`` (the default): dimensionless, O(1) at initialisation on any backbone, so one λ works across networks.
  TI: each source's squared distance divided by the spread of its ψ over the TI set (0 when matched, about 2
  for unrelated features), K·Σ_k ζ_k² · d_k (the paper's ζ_k² weighting; ×K so that equal weights give the mean
  over sources). BN: per channel, the mean shift in source standard deviations and the log ratio of the
  standard deviations, each as an RMS over the layer's channels, summed over layers, Σ_k ζ_k · d_k with
  every source measured against its own statistics. `ti_distance_scaled`, `bn_stat_distance_scaled`.
- ``paper``: the formulas above as printed (`ti_distance`, `bn_stat_distance`). Their size grows with depth,
  width, feature norm and the source variances (10²–10³× the entropy's gradient on a pretrained
  EfficientNet-Lite0), so a λ that suits one network is wrong for another; kept for reproducing the paper.

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


# ---------------------------------------------------------------------------------------------- scale-free forms
def _f32(x: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16 autocast outputs are widened; float64 stays, for gradcheck)."""
    return x if x.dtype == torch.float64 else x.float()


VAR_FLOOR = 1e-2  # × the layer's mean source variance: channels whose source variance is ~0 (dead units)
SPREAD_FLOOR = 1e-2  # × the mean squared norm of ψ: a source whose TI features barely vary is not blown up


def psi_spread(psi: torch.Tensor) -> torch.Tensor:
    """The TI term's unit: the mean squared distance of the (N, D) source features ψ from their mean, floored
    at ``SPREAD_FLOOR`` × their mean squared norm (a near-constant ψ, e.g. an untrained network, would otherwise
    turn tiny distances into huge gradients)."""
    psi = _f32(psi)
    spread = (psi - psi.mean(0)).pow(2).sum(1).mean()
    return torch.maximum(spread, SPREAD_FLOOR * psi.pow(2).sum(1).mean()).clamp_min(EPS)


def ti_distance_scaled(psi: list[torch.Tensor], feats: list[torch.Tensor], zeta: torch.Tensor,
                       spread: list[torch.Tensor] | torch.Tensor, mean: BatchMean | None = None) -> torch.Tensor:
    """K · Σ_k ζ_k² · mean over pairs of ‖ψ_k − f_k‖² / s_k, with s_k = `psi_spread` of source k's ψ on the
    whole TI set. Dimensionless: 0 when matched, ≈ 2 when f_k is unrelated to ψ_k but equally spread, the same
    for any feature scale (so ζ is not decided by which network has the smaller features)."""
    k = len(psi)
    total = _f32(feats[0]).new_zeros(())
    for j, (p, f) in enumerate(zip(psi, feats)):
        sq = (_f32(p) - _f32(f)).pow(2).sum(dim=1) / spread[j]
        total = total + zeta[j] ** 2 * (sq.mean() if mean is None else mean(sq))
    return k * total


def bn_stat_distance_scaled(src_mean: list[list[torch.Tensor]], src_var: list[list[torch.Tensor]],
                            tgt_mean: list[list[torch.Tensor]], tgt_var: list[list[torch.Tensor]],
                            zeta: torch.Tensor, var_floor: float = VAR_FLOOR) -> torch.Tensor:
    """Scale-free BN-statistics term. Outer lists: sources; inner lists: the layers that count, in order.

    Per layer l of source k, with v_floor = ``var_floor`` × the layer's mean source variance added to both
    variances: shift_l = RMS over channels of (μ̂ − μ_src) / √(σ²_src + v_floor) and
    scale_l = RMS over channels of ½ log((σ̂² + v_floor) / (σ²_src + v_floor)); d_k = Σ over layers of
    (shift_l + scale_l); the term is Σ_k ζ_k d_k. 0 when the statistics match; each layer
    contributes 1 per standard deviation of shift of all its channels, whatever its width or activation scale.
    Layers are summed, not averaged, on purpose: each layer's statistics depend mostly on the parameters just
    before it, so a sum gives every layer the same push at any depth, as the entropy's gradient reaches every
    layer (measured at initialisation, λ_d · bn then has 0.3–1.2× the encoder gradient of ent − div on
    EfficientNet-Lite0, ResNet-18 and tiny_cnn alike; averaging made it 50× weaker on the 49-layer Lite0 than
    on the 3-layer tiny_cnn). The RMS (a norm, as in the paper, not its square) keeps the gradient bounded
    however far the target starts. Computed on one flat vector per source (layers concatenated, per-layer
    means by segment sums).
    """
    total = zeta.new_zeros(())
    for j in range(len(src_mean)):
        sizes = torch.tensor([t.numel() for t in src_mean[j]], device=zeta.device)
        layer = torch.repeat_interleave(torch.arange(len(sizes), device=zeta.device), sizes)
        ms, vs = _f32(torch.cat(src_mean[j])), _f32(torch.cat(src_var[j]))
        mt, vt = _f32(torch.cat(tgt_mean[j])), _f32(torch.cat(tgt_var[j]))
        zeros = mt.new_zeros(len(sizes))
        layer_mean_var = zeros.index_add(0, layer, vs.to(mt.dtype)) / sizes
        floor = (var_floor * layer_mean_var + EPS)[layer]
        shift = (mt - ms).pow(2) / (vs + floor)
        scale = (0.5 * torch.log((vt.clamp_min(0) + floor) / (vs + floor))).pow(2)
        per_layer = lambda v: (zeros.index_add(0, layer, v) / sizes + EPS * EPS).sqrt()  # noqa: E731
        total = total + zeta[j] * (per_layer(shift) + per_layer(scale)).sum()
    return total
