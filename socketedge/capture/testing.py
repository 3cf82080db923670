"""Make real RealSense recordings without a camera: an ``rs.software_device`` with a depth and a colour sensor,
fed known frames and written to ``.db3`` by the SDK's own ``rs.recorder``. Tests (capture, runtime) replay them
through ``file://``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from socketedge.capture.base import Extrinsics, Intrinsics


@dataclass
class Recording:
    path: Path
    depth: list[np.ndarray]  # what was fed, frame by frame (uint16 raw units)
    color: list[np.ndarray] | None  # RGB uint8, or None for a depth-only recording
    depth_scale: float
    depth_intrinsics: Intrinsics
    color_intrinsics: Intrinsics | None
    depth_to_color: Extrinsics | None
    name: str
    serial: str
    firmware: str
    fps: int
    extra: dict = field(default_factory=dict)


def pinhole(width: int, height: int, fx: float | None = None, model: str = "brown_conrady") -> Intrinsics:
    f = float(fx if fx is not None else width * 0.9)
    return Intrinsics(width, height, f, f, width / 2 - 0.5, height / 2 - 0.5, model, [0.0] * 5)


def make_frames(n: int, depth_size=(48, 64), color_size=(60, 80), seed: int = 0):
    """Deterministic test content: depth ramps + noise (every value distinct per frame), colour gradients."""
    rng = np.random.default_rng(seed)
    dh, dw = depth_size
    ch, cw = color_size
    depth, color = [], []
    for i in range(n):
        d = (np.arange(dh * dw, dtype=np.int64).reshape(dh, dw) * 3 + 500 + 17 * i) % 60000
        d = (d + rng.integers(0, 5, (dh, dw))).astype(np.uint16)
        d[0, 0] = 0  # a hole, as real sensors have
        depth.append(d)
        c = np.zeros((ch, cw, 3), np.uint8)
        c[..., 0] = np.linspace(0, 255, cw, dtype=np.uint8)[None, :]
        c[..., 1] = np.linspace(0, 255, ch, dtype=np.uint8)[:, None]
        c[..., 2] = (i * 23) % 256
        color.append(c)
    return depth, color


def _rs_intrinsics(rs, intr: Intrinsics):
    out = rs.intrinsics()
    out.width, out.height = intr.width, intr.height
    out.fx, out.fy, out.ppx, out.ppy = intr.fx, intr.fy, intr.ppx, intr.ppy
    out.model = getattr(rs.distortion, intr.model)
    out.coeffs = list(intr.coeffs)
    return out


def write_realsense_recording(path: Path, depth: list[np.ndarray], color: list[np.ndarray] | None = None, *,
                              depth_scale: float = 0.001, fps: int = 30,
                              depth_intrinsics: Intrinsics | None = None,
                              color_intrinsics: Intrinsics | None = None,
                              depth_to_color: Extrinsics | None = None,
                              name: str = "Intel RealSense D435 (software device)", serial: str = "000000000042",
                              firmware: str = "5.16.0.1") -> Recording:
    """Record ``depth`` (and ``color``) frames to ``path`` (.db3) with pyrealsense2's recorder."""
    from socketedge.capture.source_realsense import import_rs

    rs = import_rs()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dh, dw = depth[0].shape
    d_intr = depth_intrinsics or pinhole(dw, dh)
    dev = rs.software_device()
    dev.register_info(rs.camera_info.name, name)
    dev.register_info(rs.camera_info.serial_number, serial)
    dev.register_info(rs.camera_info.firmware_version, firmware)
    depth_sensor = dev.add_sensor("Depth")
    depth_sensor.add_read_only_option(rs.option.depth_units, float(depth_scale))
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = rs.stream.depth, 0, 0
    vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = dw, dh, fps, 2, rs.format.z16
    vs.intrinsics = _rs_intrinsics(rs, d_intr)
    depth_profile = depth_sensor.add_video_stream(vs).as_video_stream_profile()
    sensors = [(depth_sensor, depth_profile, depth, 2)]
    c_intr = ext = None
    if color is not None:
        ch, cw = color[0].shape[:2]
        c_intr = color_intrinsics or pinhole(cw, ch)
        ext = depth_to_color or Extrinsics([1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], [0.015, 0.0, 0.0])
        color_sensor = dev.add_sensor("Color")
        cs = rs.video_stream()
        cs.type, cs.index, cs.uid = rs.stream.color, 0, 1
        cs.width, cs.height, cs.fps, cs.bpp, cs.fmt = cw, ch, fps, 3, rs.format.rgb8
        cs.intrinsics = _rs_intrinsics(rs, c_intr)
        color_profile = color_sensor.add_video_stream(cs).as_video_stream_profile()
        e = rs.extrinsics()
        e.rotation, e.translation = list(ext.rotation), list(ext.translation)
        depth_profile.register_extrinsics_to(color_profile, e)
        sensors.append((color_sensor, color_profile, color, 3))
    dev.create_matcher(rs.matchers.default)
    recorder = rs.recorder(str(path), dev)
    sync = rs.syncer()
    for sensor, profile, _, _ in sensors:
        sensor.open(profile)
        sensor.start(sync)
    keep = []  # the SDK reads the pixel buffers after on_video_frame returns: keep them alive until stop()
    for i in range(len(depth)):
        for sensor, profile, images, bpp in sensors:
            pixels = np.ascontiguousarray(images[i])
            keep.append(pixels)
            frame = rs.software_video_frame()  # a fresh one per call; reusing one corrupts the heap
            frame.pixels = pixels
            frame.bpp = bpp
            frame.stride = pixels.shape[1] * bpp
            frame.timestamp = 1000.0 * i / fps
            frame.domain = rs.timestamp_domain.hardware_clock
            frame.frame_number = i
            frame.profile = profile
            sensor.on_video_frame(frame)
    for sensor, _, _, _ in sensors:
        sensor.stop()
        sensor.close()
    recorder.pause()
    del recorder
    del keep
    return Recording(path, list(depth), list(color) if color is not None else None, float(depth_scale), d_intr,
                     c_intr, ext, name, serial, firmware, fps)
