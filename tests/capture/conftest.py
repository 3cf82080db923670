"""Recordings made by the real RealSense SDK from a software device (no camera needed)."""

from __future__ import annotations

import pytest


def _rs_or_skip():
    try:
        import pyrealsense2  # noqa: F401
    except ImportError as e:
        pytest.skip(f"pyrealsense2 is not importable ({e}); install socketedge[realsense]")


@pytest.fixture(scope="session")
def recording(tmp_path_factory):
    """10 frames, depth 64×48 and colour 80×60 (mismatched on purpose), depth scale 0.5 mm."""
    _rs_or_skip()
    from socketedge.capture.testing import make_frames, write_realsense_recording

    depth, color = make_frames(10, depth_size=(48, 64), color_size=(60, 80), seed=3)
    return write_realsense_recording(tmp_path_factory.mktemp("rec") / "rec.db3", depth, color, depth_scale=0.0005,
                                     serial="123456789012", firmware="5.16.0.1")


@pytest.fixture(scope="session")
def depth_only_recording(tmp_path_factory):
    _rs_or_skip()
    from socketedge.capture.testing import make_frames, write_realsense_recording

    depth, _ = make_frames(6, depth_size=(40, 56), seed=5)
    return write_realsense_recording(tmp_path_factory.mktemp("rec") / "depth.db3", depth, None)


@pytest.fixture(scope="session")
def long_recording(tmp_path_factory):
    """Enough frames that a capture is still running when the test interrupts it."""
    _rs_or_skip()
    from socketedge.capture.testing import make_frames, write_realsense_recording

    depth, color = make_frames(400, depth_size=(48, 64), color_size=(48, 64), seed=7)
    return write_realsense_recording(tmp_path_factory.mktemp("rec") / "long.db3", depth, color)
