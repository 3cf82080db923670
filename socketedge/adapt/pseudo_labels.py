"""Self-supervised pseudo-labels (SHOT / DECISION style), recomputed at the start of every epoch.

Features of all target images (eval mode, no augmentation) are mixed across sources with ζ (each source's
features brought to a common mean norm first, see `mix_features`); class centroids are
the prediction-weighted means of the L2-normalised features; each image takes the nearest centroid by cosine
distance; then one refinement round with hard assignments.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mix_features(feats: list[torch.Tensor], zeta: torch.Tensor, per_source_scale: bool = False) -> torch.Tensor:
    """Σ_k ζ_k f_k when every source has the same feature width, else the concatenation of ζ_k f_k.

    ``per_source_scale`` (the pseudo-label pass): with several sources, each source's features are first
    brought to the same mean norm (the sources' average), so the mixture is not decided by which network
    happens to have the larger features. One source is left as it is."""
    if per_source_scale and len(feats) > 1:
        norms = [f.float().norm(dim=1).mean().clamp_min(1e-12) for f in feats]
        common = torch.stack(norms).mean()
        feats = [f * (common / n) for f, n in zip(feats, norms)]
    if all(f.shape == feats[0].shape for f in feats):
        return torch.einsum("k,kbd->bd", zeta, torch.stack(feats))
    return torch.cat([z * f for z, f in zip(zeta, feats)], dim=1)


def _normalise(features: torch.Tensor) -> torch.Tensor:
    # A constant 1 appended before normalising keeps an all-zero feature well defined.
    ones = torch.ones(features.shape[0], 1, dtype=features.dtype, device=features.device)
    return F.normalize(torch.cat([features, ones], dim=1), dim=1)


def _nearest(feats: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    centroids = weights.t() @ feats / (weights.sum(0)[:, None] + 1e-8)  # (C, D)
    sims = feats @ F.normalize(centroids, dim=1).t()  # cosine similarity; distance = 1 - sim
    sims = sims.masked_fill(weights.sum(0)[None, :] <= 0, float("-inf"))  # classes nobody belongs to
    return sims.argmax(dim=1)


def pseudo_labels(features: torch.Tensor, probs: torch.Tensor, rounds: int = 1) -> torch.Tensor:
    """(N, D) features and (N, C) ensemble probabilities → (N,) pseudo-labels."""
    feats = _normalise(features.float())
    labels = _nearest(feats, probs.float())
    num_classes = probs.shape[1]
    for _ in range(rounds):
        labels = _nearest(feats, F.one_hot(labels, num_classes).float())
    return labels
