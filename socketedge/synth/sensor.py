"""Camera models: rendered radiance/geometry → the 8-bit colour image and 16-bit depth image a sensor delivers.

Depth follows an active-stereo camera (RealSense D4xx-like): depth is measured as disparity D = f·b / z, so
Gaussian disparity noise σ_D and the subpixel quantisation of D give a depth error growing with z²
(σ_z ≈ z² σ_D / (f b)); the stored value is millimetres (quantisation). Pixels return no depth (0) where the
second camera cannot see them (the occlusion band beside every foreground edge), at depth discontinuities
(flying pixels the sensor filters out), at grazing angles, outside the working range, and at random specks.
"""

from __future__ import annotations

import numpy as np

from socketedge.synth.render import Rendered
from socketedge.synth.scene import Scene, SensorConfig


def colour_image(radiance: np.ndarray, noise_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Linear radiance (H, W, 3) → sRGB-ish gamma, sensor noise, 8-bit."""
    v = np.clip(radiance, 0, 1) ** np.float32(1 / 2.2) * np.float32(255.0)
    v += rng.standard_normal(v.shape, dtype=np.float32) * np.float32(noise_sigma)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def occlusion_mask(z: np.ndarray, focal_px: float, baseline_m: float) -> np.ndarray:
    """Pixels of the (left) reference view that the right camera cannot see: a closer pixel further right lands
    on or left of them after the disparity shift."""
    h, w = z.shape
    disp = np.where(z > 0, focal_px * baseline_m / np.maximum(z, 1e-6), 0.0)
    x = np.arange(w, dtype=np.float64)[None, :]
    pos = x - disp
    rev_min = np.minimum.accumulate(pos[:, ::-1], axis=1)[:, ::-1]  # min over x' ≥ x
    right_min = np.concatenate([rev_min[:, 1:], np.full((h, 1), np.inf)], axis=1)  # min over x' > x
    return right_min < pos - 0.5


def discontinuity_mask(z: np.ndarray, jump: float) -> np.ndarray:
    """Pixels next to a relative depth jump larger than ``jump`` (either side of the edge)."""
    out = np.zeros(z.shape, bool)
    for axis in (0, 1):
        a = np.take(z, range(1, z.shape[axis]), axis=axis)
        b = np.take(z, range(0, z.shape[axis] - 1), axis=axis)
        big = (a > 0) & (b > 0) & (np.abs(a - b) > jump * np.minimum(a, b))
        pad = [(0, 0), (0, 0)]
        pad[axis] = (1, 0)
        out |= np.pad(big, pad)
        pad[axis] = (0, 1)
        out |= np.pad(big, pad)
    return out


def depth_image(z: np.ndarray, cos_inc: np.ndarray, focal_px: float, cfg: SensorConfig,
                rng: np.random.Generator) -> np.ndarray:
    """True depth along the optical axis (metres, 0 = no surface) → uint16 millimetres with noise and holes."""
    valid = z > 0
    valid &= ~occlusion_mask(z, focal_px, cfg.baseline_m)
    edge = discontinuity_mask(z, cfg.edge_jump)
    valid &= ~(edge & (rng.random(z.shape) < cfg.edge_hole_prob))
    lo, hi = cfg.grazing_cos
    p_graze = np.clip((hi - cos_inc) / max(hi - lo, 1e-6), 0, 1)
    valid &= ~(rng.random(z.shape) < p_graze)
    valid &= ~(rng.random(z.shape) < cfg.speckle_prob)

    fb = cfg.native_focal_px * cfg.baseline_m
    disp = fb / np.where(valid, z, 1.0)
    disp = disp + rng.normal(0, cfg.disparity_noise_px, z.shape)
    disp = np.round(disp * cfg.subpixel_steps) / cfg.subpixel_steps
    measured = fb / np.maximum(disp, 1e-6)
    valid &= (disp > 0) & (measured >= cfg.min_range_m) & (measured <= cfg.max_range_m)
    mm = np.where(valid, np.rint(measured * 1000.0), 0)
    return mm.astype(np.uint16)


def capture(rendered: Rendered, scenes: list[Scene], fov_deg: float, cfg: SensorConfig
            ) -> tuple[np.ndarray, np.ndarray]:
    """(B, S, S, 3) uint8 colour and (B, S, S) uint16 depth in millimetres."""
    size = rendered.depth.shape[-1]
    focal = size / 2 / np.tan(np.radians(fov_deg) / 2)
    rgb = np.empty(rendered.radiance.shape, np.uint8)
    depth = np.empty(rendered.depth.shape, np.uint16)
    for i, scene in enumerate(scenes):
        rng = np.random.default_rng(scene.noise_seed)
        rgb[i] = colour_image(rendered.radiance[i], scene.rgb_noise, rng)
        depth[i] = depth_image(rendered.depth[i], rendered.cos_incidence[i], focal, cfg, rng)
    return rgb, depth
