"""Live cameras, against the real SDKs. Skipped with a reason when no camera is attached."""

from __future__ import annotations

import numpy as np
import pytest

from socketedge.capture.base import open_source


def _realsense_serial() -> str:
    try:
        import pyrealsense2 as rs
    except ImportError:
        pytest.skip("pyrealsense2 is not installed (socketedge[realsense])")
    devices = list(rs.context().query_devices())
    if not devices:
        pytest.skip("no RealSense camera attached")
    return devices[0].get_info(rs.camera_info.serial_number)


def _kinect_index() -> int:
    try:
        import pyk4a
    except ImportError:
        pytest.skip("pyk4a is not installed (socketedge[kinect])")
    if pyk4a.connected_device_count() == 0:
        pytest.skip("no Azure Kinect / Femto camera attached")
    return 0


@pytest.mark.realsense
def test_realsense_aligned_frames_with_device_calibration(tmp_path):
    serial = _realsense_serial()
    record = tmp_path / "raw.db3"
    with open_source(f"realsense://{serial}?filters=spatial,temporal", record=str(record)) as src:
        frames = [src.read() for _ in range(10)]
        info = src.info
    assert info.serial == serial and info.depth_scale > 0 and info.depth_aligned_to_color
    assert info.color_intrinsics.fx > 0 and info.depth_intrinsics.fx > 0 and info.depth_to_color is not None
    for f in frames:
        assert f.depth.dtype == np.uint16 and f.depth.shape == f.color.shape[:2]
        assert f.meta["drops"] >= 0
    with open_source(f"file://{record}") as replay:
        assert replay.info.serial == serial and replay.read() is not None


@pytest.mark.realsense
def test_realsense_capture_with_profile(tmp_path):
    from socketedge.capture.capture import CaptureConfig, capture
    from socketedge.data.session_check import validate_session

    serial = _realsense_serial()
    result = capture(CaptureConfig(source=f"realsense://{serial}", out=tmp_path / "s", frames=5, profile="d435"))
    assert result.written == 5 and validate_session(tmp_path / "s").ok


@pytest.mark.kinect
def test_kinect_depth_in_colour_camera():
    index = _kinect_index()
    with open_source(f"k4a://{index}") as src:
        frame = src.read()
        assert src.info.depth_scale == 0.001 and src.info.color_intrinsics is not None
    assert frame.depth.shape == frame.color.shape[:2] and frame.depth.dtype == np.uint16


def test_no_camera_is_a_device_error():
    from socketedge.errors import DeviceError, MissingExtraError

    try:
        import pyrealsense2 as rs
    except ImportError:
        pytest.skip("pyrealsense2 is not installed (socketedge[realsense])")
    if list(rs.context().query_devices()):
        pytest.skip("a RealSense camera is attached")
    with pytest.raises(DeviceError, match="no RealSense camera"):
        open_source("realsense://").__enter__()
    try:
        import pyk4a  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match=r"socketedge\[kinect\]"):
            open_source("k4a://0").__enter__()
