"""Modality-gap diagnostics on held-out task-irrelevant pairs: how far target-modality features are from the RGB
features of the same scene (mean L2 distance, mean cosine similarity) and how similar the two representations
are up to rotation and scale (linear CKA, Kornblith et al. 2019), plus a joint 2-D PCA projection for plots."""

from __future__ import annotations

import torch


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between (n, d1) and (n, d2) feature matrices; 1 = identical up to rotation/isotropic scale."""
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    cross = (y.t() @ x).norm() ** 2
    denom = (x.t() @ x).norm() * (y.t() @ y).norm()
    return float(cross / denom) if denom > 0 else 0.0


def gap_stats(rgb: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    rgb, target = rgb.float(), target.float()
    return {
        "distance": float((rgb - target).norm(dim=1).mean()),
        "cosine": float(torch.nn.functional.cosine_similarity(rgb, target, dim=1).mean()),
        "cka": linear_cka(rgb, target),
    }


def joint_projection(rgb: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both modalities projected on the first two principal axes of their union."""
    both = torch.cat([rgb, target]).float()
    centred = both - both.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    proj = centred @ v[:2].t()
    return proj[: len(rgb)], proj[len(rgb):]
