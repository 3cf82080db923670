"""Registration helpers in numpy: back-project depth, move it into the colour camera, splat it onto the colour grid.

The capture path uses the SDKs' own alignment (``rs.align``, K4A's transformation). This is the same geometry
without an SDK — for sessions recorded with ``align=0``, and as an independent check of what the SDK produced.
Pinhole cameras only (distortion coefficients must be zero); a distorted model raises ConfigError.
"""

from __future__ import annotations

import numpy as np

from socketedge.capture.base import Extrinsics, Intrinsics
from socketedge.errors import ConfigError


def _check_pinhole(intr: Intrinsics, what: str) -> None:
    if any(abs(c) > 0 for c in intr.coeffs):
        raise ConfigError(f"{what} intrinsics use distortion model {intr.model} with non-zero coefficients; "
                          f"register with the camera SDK (rs.align / k4a transformation) instead")


def camera_matrix(intr: Intrinsics) -> np.ndarray:
    return np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]])


def rotation_matrix(ext: Extrinsics) -> np.ndarray:
    """3×3 rotation from the 9 column-major values librealsense reports."""
    return np.asarray(ext.rotation, dtype=np.float64).reshape(3, 3).T


def transform_points(points: np.ndarray, ext: Extrinsics) -> np.ndarray:
    """Points (…×3, metres) from the ``from`` camera into the ``to`` camera of ``ext``."""
    return points @ rotation_matrix(ext).T + np.asarray(ext.translation, dtype=np.float64)


def deproject(depth: np.ndarray, intr: Intrinsics, depth_scale: float, offset: tuple[float, float] = (0.0, 0.0)):
    """H×W×3 points in metres for each pixel (shifted by ``offset`` pixels, e.g. −0.5 for a pixel's corner)."""
    _check_pinhole(intr, "depth")
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    z = depth.astype(np.float64) * depth_scale
    x = (xs + offset[0] - intr.ppx) / intr.fx * z
    y = (ys + offset[1] - intr.ppy) / intr.fy * z
    return np.stack([x, y, z], axis=-1)


def project(points: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """…×2 pixel coordinates of points (…×3) seen by a pinhole camera."""
    _check_pinhole(intr, "colour")
    z = points[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = points[..., 0] / z * intr.fx + intr.ppx
        v = points[..., 1] / z * intr.fy + intr.ppy
    return np.stack([u, v], axis=-1)


def register_depth_to_color(depth: np.ndarray, depth_intr: Intrinsics, color_intr: Intrinsics, ext: Extrinsics,
                            depth_scale: float) -> np.ndarray:
    """Depth (raw units) resampled onto the colour grid, as ``rs.align(rs.stream.color)`` does: each depth pixel
    covers the colour pixels between its projected corners; where several land, the nearest wins; values stay raw
    units of the depth camera; 0 where no depth lands."""
    valid = depth > 0
    corners = []
    for off in (-0.5, 0.5):
        pts = transform_points(deproject(depth, depth_intr, depth_scale, (off, off)), ext)
        corners.append(np.floor(project(pts, color_intr) + 0.5))
    (u0, v0), (u1, v1) = np.moveaxis(corners[0], -1, 0), np.moveaxis(corners[1], -1, 0)
    ok = valid & np.isfinite(u0) & np.isfinite(u1) & np.isfinite(v0) & np.isfinite(v1)
    u0, u1, v0, v1 = (a[ok].astype(np.int64) for a in (u0, u1, v0, v1))
    z = depth[ok].astype(np.int64)
    h, w = color_intr.height, color_intr.width
    empty = np.iinfo(np.int64).max
    out = np.full(h * w, empty, dtype=np.int64)
    for dy in range(int((v1 - v0).max(initial=0)) + 1):
        for dx in range(int((u1 - u0).max(initial=0)) + 1):
            u, v = u0 + dx, v0 + dy
            m = (u <= u1) & (v <= v1) & (u >= 0) & (v >= 0) & (u < w) & (v < h)
            np.minimum.at(out, v[m] * w + u[m], z[m])
    out[out == empty] = 0
    return out.reshape(h, w).astype(np.uint16)
