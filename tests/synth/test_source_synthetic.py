"""The synthetic:// virtual RGB-D camera through open_source."""

from __future__ import annotations

import numpy as np
import pytest

from socketedge.capture.base import open_source
from socketedge.errors import ConfigError


def _read_all(uri: str, **kw):
    with open_source(uri, **kw) as src:
        return src.info, list(src)


def test_finite_stream_of_labeled_rgbd_frames():
    info, frames = _read_all("synthetic://?size=32&frames=6&seed=3&classes=cube,torus&fps=15")
    assert len(frames) == 6
    assert info.sensor == "synthetic" and info.depth_scale == 0.001
    assert info.modalities == ("rgb", "depth") and info.depth_aligned_to_color
    intr = info.depth_intrinsics
    assert (intr.width, intr.height) == (32, 32) and intr.fx > 0 and intr.ppx == pytest.approx(15.5)
    for i, f in enumerate(frames):
        assert f.index == i and f.timestamp == pytest.approx(i / 15)
        assert f.color.shape == (32, 32, 3) and f.color.dtype == np.uint8
        assert f.depth.shape == (32, 32) and f.depth.dtype == np.uint16
        assert f.label in ("cube", "torus")
        assert f.image("depth") is f.depth
    assert {f.label for f in frames} == {"cube", "torus"}


def test_same_seed_same_stream_other_seed_other_stream():
    _, a = _read_all("synthetic://?size=24&frames=4&seed=1")
    _, b = _read_all("synthetic://", size=24, frames=4, seed=1)
    _, c = _read_all("synthetic://?size=24&frames=4&seed=2")
    for x, y in zip(a, b):
        assert x.label == y.label
        np.testing.assert_array_equal(x.depth, y.depth)
        np.testing.assert_array_equal(x.color, y.color)
    assert any(not np.array_equal(x.color, z.color) for x, z in zip(a, c))


def test_endless_without_frames_and_live():
    with open_source("synthetic://?size=16") as src:
        assert src.live
        frames = [src.read() for _ in range(40)]  # past the prefetch window
    assert all(f is not None for f in frames) and frames[-1].index == 39


def test_frame_label_matches_the_rendered_class():
    from socketedge.synth import render_one

    _, frames = _read_all("synthetic://?size=24&frames=3&seed=4")
    for f in frames:
        rgb, depth = render_one(f.label, f.index, size=24, seed=4, split="stream")
        np.testing.assert_array_equal(f.color, rgb)
        np.testing.assert_array_equal(f.depth, depth)


@pytest.mark.parametrize("query, match", [("size=4", "size"), ("classes=cube,blob", "blob"),
                                          ("fps=0", "fps"), ("frames=x", "frames")])
def test_bad_options_are_one_line_config_errors(query, match):
    with pytest.raises(ConfigError, match=match):
        with open_source(f"synthetic://?{query}"):
            pass
