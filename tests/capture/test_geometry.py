"""The numpy registration reproduces the SDK's rs.align on a real recording (independent check of both)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from socketedge.capture.base import Extrinsics, Intrinsics, open_source
from socketedge.capture.geometry import deproject, project, register_depth_to_color, transform_points
from socketedge.errors import ConfigError


def test_project_inverts_deproject():
    intr = Intrinsics(32, 24, 30.0, 31.0, 15.5, 11.5)
    depth = np.full((24, 32), 1500, np.uint16)
    pix = project(deproject(depth, intr, 0.001), intr)
    ys, xs = np.mgrid[0:24, 0:32]
    assert np.allclose(pix[..., 0], xs) and np.allclose(pix[..., 1], ys)
    moved = transform_points(np.zeros((1, 3)), Extrinsics([1, 0, 0, 0, 1, 0, 0, 0, 1], [0.1, 0.0, 0.0]))
    assert np.allclose(moved, [[0.1, 0.0, 0.0]])


def test_matches_rs_align(tmp_path):
    pytest.importorskip("pyrealsense2", reason="needs socketedge[realsense]")
    from socketedge.capture.testing import write_realsense_recording

    a = math.radians(2.0)
    ext = Extrinsics([math.cos(a), 0, -math.sin(a), 0, 1, 0, math.sin(a), 0, math.cos(a)], [0.02, 0.004, 0.001])
    ramp = (np.arange(64) * 9).astype(np.uint16)[None, :]
    depth = [np.full((48, 64), 700 + 40 * i, np.uint16) + ramp for i in range(3)]
    depth[1][10:20, 10:30] = 0  # holes stay holes
    color = [np.zeros((60, 80, 3), np.uint8) for _ in range(3)]
    rec = write_realsense_recording(tmp_path / "g.db3", depth, color, depth_to_color=ext)
    with open_source(f"file://{rec.path}") as src:
        frames, info = list(src), src.info
    assert frames
    for f in frames:
        ours = register_depth_to_color(depth[f.meta["depth_frame"]], info.depth_intrinsics, info.color_intrinsics,
                                       info.depth_to_color, info.depth_scale)
        assert ours.shape == f.depth.shape
        assert (ours == f.depth).mean() > 0.99  # float32 vs float64 rounding may move a few edge pixels


def test_distorted_models_are_refused():
    intr = Intrinsics(4, 4, 1.0, 1.0, 2.0, 2.0, "brown_conrady", [0.1, 0, 0, 0, 0])
    with pytest.raises(ConfigError, match="SDK"):
        deproject(np.ones((4, 4), np.uint16), intr, 0.001)
