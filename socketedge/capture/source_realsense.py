"""Intel RealSense cameras (``realsense://[SERIAL]``) through the pyrealsense2 pipeline.

Options (URI query or keyword arguments): ``width``/``height``/``fps`` (depth stream), ``color_width``/
``color_height``/``color_fps``, ``color`` (0 for depth only), ``infrared`` (1 adds the left IR stream as NIR),
``align`` (1: depth is registered to the colour camera with the SDK's ``rs.align``), ``filters`` (comma list of
decimation, threshold, spatial, temporal, hole_filling — always applied in the order the SDK maintainers
recommend, before alignment), ``decimation``/``spatial_alpha``/``spatial_delta``/``temporal_alpha``/
``temporal_delta``/``hole_filling`` (filter settings), ``min_depth``/``max_depth`` (metres, threshold filter),
``emitter`` (0/1), ``laser_power``, ``exposure`` (µs; ``auto`` for auto-exposure), ``record`` (a .db3 path that
keeps the SDK's raw recording), ``timeout`` (seconds ``read()`` waits before raising DeviceError), ``profile``
(a camera profile from calibration/ supplying defaults).

The shared frameset → Frame conversion also serves ``file://`` recordings (source_file.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from socketedge.capture.base import Extrinsics, Frame, FrameSource, Intrinsics, SensorInfo, register_source
from socketedge.errors import ConfigError, DeviceError, lazy_import

# The order Intel's post-processing guide recommends; disparity transforms wrap spatial + temporal.
FILTER_ORDER = ("decimation", "threshold", "spatial", "temporal", "hole_filling")


def import_rs():
    return lazy_import("pyrealsense2", "realsense", "needed for RealSense cameras and .db3/.bag recordings")


def to_intrinsics(rs_intr) -> Intrinsics:
    return Intrinsics(width=int(rs_intr.width), height=int(rs_intr.height), fx=float(rs_intr.fx),
                      fy=float(rs_intr.fy), ppx=float(rs_intr.ppx), ppy=float(rs_intr.ppy),
                      model=str(rs_intr.model).split(".")[-1], coeffs=[float(c) for c in rs_intr.coeffs])


def device_info(rs, dev) -> tuple[str, str, str]:
    def get(key: str) -> str:
        info = getattr(rs.camera_info, key)
        return str(dev.get_info(info)) if dev.supports(info) else ""

    return get("name") or "Intel RealSense", get("serial_number"), get("firmware_version")


def sensor_info(rs, dev, stream_profiles, aligned: bool, extra: dict | None = None) -> SensorInfo:
    """Everything the device or recording says about itself: names, intrinsics, extrinsics, depth scale."""
    name, serial, firmware = device_info(rs, dev)
    streams = {}
    for s in stream_profiles:
        if s.is_video_stream_profile():
            streams.setdefault(s.stream_type(), s.as_video_stream_profile())
    depth, color = streams.get(rs.stream.depth), streams.get(rs.stream.color)
    infrared = streams.get(rs.stream.infrared)
    scale = 0.001
    try:
        scale = float(dev.first_depth_sensor().get_depth_scale())
    except RuntimeError:
        pass
    to_color = None
    if depth is not None and color is not None:
        e = depth.get_extrinsics_to(color)
        to_color = Extrinsics(rotation=[float(v) for v in e.rotation], translation=[float(v) for v in e.translation])
    modalities = tuple(m for m, s in (("rgb", color), ("depth", depth), ("nir", infrared)) if s is not None)
    fps = next((float(s.fps()) for s in (depth, color) if s is not None), None)
    return SensorInfo(
        sensor=name, serial=serial, firmware=firmware, depth_scale=scale, modalities=modalities,
        color_intrinsics=to_intrinsics(color.get_intrinsics()) if color is not None else None,
        depth_intrinsics=to_intrinsics(depth.get_intrinsics()) if depth is not None else None,
        depth_to_color=to_color, depth_aligned_to_color=aligned and depth is not None and color is not None,
        fps=fps, extra=extra or {})


def color_to_rgb(frame, rs) -> np.ndarray:
    """A colour frame of any common RealSense format as an H×W×3 uint8 RGB copy."""
    import cv2

    data = np.asanyarray(frame.get_data())
    fmt = frame.get_profile().format()
    if fmt == rs.format.rgb8:
        return data.copy()
    if fmt == rs.format.bgr8:
        return np.ascontiguousarray(data[..., ::-1])
    if fmt == rs.format.rgba8:
        return np.ascontiguousarray(data[..., :3])
    if fmt == rs.format.bgra8:
        return np.ascontiguousarray(data[..., 2::-1])
    if fmt == rs.format.yuyv:
        h, w = frame.get_height(), frame.get_width()
        return cv2.cvtColor(data.reshape(h, w, 2), cv2.COLOR_YUV2RGB_YUYV)
    if fmt == rs.format.uyvy:
        h, w = frame.get_height(), frame.get_width()
        return cv2.cvtColor(data.reshape(h, w, 2), cv2.COLOR_YUV2RGB_UYVY)
    if fmt == rs.format.y8:
        return cv2.cvtColor(data, cv2.COLOR_GRAY2RGB)
    if fmt == rs.format.mjpeg:
        bgr = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    raise DeviceError(f"colour format {fmt} is not supported; record colour as rgb8, bgr8 or yuyv")


@dataclass
class FilterSettings:
    names: tuple[str, ...] = ()
    decimation: int = 2
    spatial_alpha: float = 0.5
    spatial_delta: float = 20.0
    temporal_alpha: float = 0.4
    temporal_delta: float = 20.0
    hole_filling: int = 1  # 0 fill from left, 1 farthest from around, 2 nearest from around
    min_depth: float = 0.1  # metres (threshold filter)
    max_depth: float = 10.0

    @classmethod
    def from_source(cls, src: FrameSource) -> "FilterSettings":
        raw = src.option("filters", "") or ""
        names = tuple(n.strip().replace("-", "_") for n in str(raw).split(",") if n.strip() and n.strip() != "none")
        unknown = [n for n in names if n not in FILTER_ORDER]
        if unknown:
            raise ConfigError(f"unknown depth filter {unknown[0]!r}; expected a comma list of {', '.join(FILTER_ORDER)}")
        d = cls()
        return cls(names=tuple(n for n in FILTER_ORDER if n in names),  # user order is ignored on purpose
                   decimation=src.option("decimation", d.decimation, int),
                   spatial_alpha=src.option("spatial_alpha", d.spatial_alpha, float),
                   spatial_delta=src.option("spatial_delta", d.spatial_delta, float),
                   temporal_alpha=src.option("temporal_alpha", d.temporal_alpha, float),
                   temporal_delta=src.option("temporal_delta", d.temporal_delta, float),
                   hole_filling=src.option("hole_filling", d.hole_filling, int),
                   min_depth=src.option("min_depth", d.min_depth, float),
                   max_depth=src.option("max_depth", d.max_depth, float))

    def build(self, rs) -> list:
        """Processing blocks in Intel's recommended order: decimation → threshold → depth→disparity → spatial →
        temporal → disparity→depth → hole filling."""
        blocks = []
        if "decimation" in self.names:
            blocks.append(rs.decimation_filter(float(self.decimation)))
        if "threshold" in self.names:
            blocks.append(rs.threshold_filter(self.min_depth, self.max_depth))
        smoothing = [n for n in ("spatial", "temporal") if n in self.names]
        if smoothing:
            blocks.append(rs.disparity_transform(True))
        if "spatial" in self.names:
            f = rs.spatial_filter()
            f.set_option(rs.option.filter_smooth_alpha, self.spatial_alpha)
            f.set_option(rs.option.filter_smooth_delta, self.spatial_delta)
            blocks.append(f)
        if "temporal" in self.names:
            f = rs.temporal_filter()
            f.set_option(rs.option.filter_smooth_alpha, self.temporal_alpha)
            f.set_option(rs.option.filter_smooth_delta, self.temporal_delta)
            blocks.append(f)
        if smoothing:
            blocks.append(rs.disparity_transform(False))
        if "hole_filling" in self.names:
            blocks.append(rs.hole_filling_filter(int(self.hole_filling)))
        return blocks


_KINDS = ("color", "depth", "infrared")


class FramesetConverter:
    """pyrealsense2 framesets → Frames: pairing, post-filters, alignment, copies into numpy.

    Frames are paired per stream, not trusted per frameset: a syncer may hand out depth and colour of the same
    instant in two framesets (playback does at its start), and a pipeline may repeat the previous frame of one
    stream next to a new frame of the other. Each stream's newest unseen frame waits until every stream has one
    within a frame period; the set is then composed into one frameset (a processing block), filtered and aligned.
    ``drops`` counts depth frames that never made it into a Frame; ``seen`` the distinct frames per stream.
    """

    def __init__(self, rs, streams: tuple[str, ...], align: bool, filters: list | None = None,
                 fps: float | None = None):
        self.rs = rs
        self.streams = tuple(k for k in _KINDS if k in streams)
        self.filters = filters or []
        self.tolerance_ms = 1000.0 / fps if fps else 34.0
        self.aligner = rs.align(rs.stream.color) if align and {"color", "depth"} <= set(self.streams) else None
        self.drops = 0
        self.emitted = 0
        self.seen: dict[str, set[int]] = {k: set() for k in self.streams}
        self._pending: dict = {}
        self._last: dict[str, int] = {}
        self._held: list = []
        self._queue = None
        if len(self.streams) > 1:
            def compose(_frame, source):
                source.frame_ready(source.allocate_composite_frame(self._held))

            self._composer = rs.processing_block(compose)
            self._queue = rs.frame_queue(2)
            self._composer.start(self._queue)

    def _stream_frames(self, fs) -> dict:
        rs = self.rs
        kinds = {"color": rs.stream.color, "depth": rs.stream.depth, "infrared": rs.stream.infrared}
        return {k: f for k in self.streams if (f := fs.first_or_default(kinds[k]))}

    def convert(self, fs) -> Frame | None:
        got = self._stream_frames(fs)
        for k, f in got.items():
            n = int(f.get_frame_number())
            self.seen[k].add(n)
            if n > self._last.get(k, -1) and (k not in self._pending
                                              or n > int(self._pending[k].get_frame_number())):
                if k == "depth" and k in self._pending:
                    self.drops += 1  # replaced before it found a partner
                self._pending[k] = f
        if set(self._pending) != set(self.streams):
            return None
        stamps = {k: float(f.get_timestamp()) for k, f in self._pending.items()}
        complete = set(got) == set(self.streams) and all(got[k] is self._pending[k] for k in got)
        if not complete and max(stamps.values()) - min(stamps.values()) > self.tolerance_ms:
            oldest = min(stamps, key=stamps.get)  # no partner will come for it
            if oldest == "depth":
                self.drops += 1
            del self._pending[oldest]
            return None
        frames, self._pending = self._pending, {}
        return self._build(frames, fs)

    def _build(self, frames: dict, fs) -> Frame:
        numbers = {k: int(f.get_frame_number()) for k, f in frames.items()}
        if "depth" in numbers and "depth" in self._last:
            self.drops += max(0, numbers["depth"] - self._last["depth"] - 1)
        self._last = numbers
        meta = {f"{k}_frame": n for k, n in numbers.items()}
        meta.update({f"{k}_timestamp_ms": float(f.get_timestamp()) for k, f in frames.items()})
        meta["timestamp_domain"] = str(frames[self.streams[0]].get_frame_timestamp_domain()).split(".")[-1]
        if self._queue is not None:
            self._held = [frames[k] for k in self.streams]
            self._composer.invoke(self._held[0])
            processed = self._queue.wait_for_frame()
            self._held = []
        else:
            processed = frames[self.streams[0]]
        for block in self.filters:
            processed = block.process(processed)
        if self.aligner is not None:
            processed = self.aligner.process(processed.as_frameset())
        if processed.is_frameset():
            out = processed.as_frameset()
            depth_f, color_f = out.get_depth_frame(), out.get_color_frame()
        else:
            depth_f = processed if "depth" in self.streams else None
            color_f = processed if "color" in self.streams else None
        depth = np.asanyarray(depth_f.get_data()).astype(np.uint16, copy=True) if "depth" in self.streams else None
        color = color_to_rgb(color_f, self.rs) if "color" in self.streams else None
        infrared = (np.asanyarray(frames["infrared"].get_data()).astype(np.uint8, copy=True)
                    if "infrared" in self.streams else None)
        first = frames["depth"] if "depth" in frames else frames[self.streams[0]]
        frame = Frame(index=self.emitted, timestamp=float(first.get_timestamp()) / 1000.0, color=color, depth=depth,
                      infrared=infrared, meta={**meta, "drops": self.drops})
        self.emitted += 1
        return frame


@register_source("realsense")
class RealSenseSource(FrameSource):
    """A live RealSense camera. ``read()`` blocks up to ``timeout`` seconds, then raises DeviceError."""

    live = True

    def __init__(self, uri: str, **options):
        from socketedge.capture.profiles import with_profile

        super().__init__(uri, **with_profile(options))
        self._pipeline = None
        self._converter: FramesetConverter | None = None
        self._removed = threading.Event()

    # configuration -----------------------------------------------------------------------------------------
    def _streams(self) -> tuple[str, ...]:
        streams = ["depth"]
        if self.option("color", True, bool):
            streams.insert(0, "color")
        if self.option("infrared", False, bool):
            streams.append("infrared")
        return tuple(streams)

    def _config(self, rs):
        cfg = rs.config()
        serial = self.target
        if serial:
            cfg.enable_device(serial)
        w, h, fps = self.option("width", 640, int), self.option("height", 480, int), self.option("fps", 30, int)
        streams = self._streams()
        cfg.enable_stream(rs.stream.depth, w, h, rs.format.z16, fps)
        if "color" in streams:
            cfg.enable_stream(rs.stream.color, self.option("color_width", w, int),
                              self.option("color_height", h, int), rs.format.rgb8, self.option("color_fps", fps, int))
        if "infrared" in streams:
            cfg.enable_stream(rs.stream.infrared, 1, w, h, rs.format.y8, fps)
        record = self.option("record")
        if record:
            if not str(record).endswith(".db3"):
                raise ConfigError(f"--record {record}: pyrealsense2 >= 2.58 records rosbag2 files; use a .db3 name")
            cfg.enable_record_to_file(str(record))
        return cfg

    def _apply_sensor_options(self, rs, dev) -> None:
        try:
            depth_sensor = dev.first_depth_sensor()
        except RuntimeError:
            return
        try:
            self._set_sensor_options(rs, depth_sensor)
        except RuntimeError as e:
            raise ConfigError(f"RealSense {self._serial} refused a sensor option (emitter/laser_power/exposure): "
                              f"{e}; check the value against the camera's range") from None

    def _set_sensor_options(self, rs, depth_sensor) -> None:
        emitter = self.option("emitter", None, bool)
        if emitter is not None and depth_sensor.supports(rs.option.emitter_enabled):
            depth_sensor.set_option(rs.option.emitter_enabled, 1.0 if emitter else 0.0)
        power = self.option("laser_power", None, float)
        if power is not None and depth_sensor.supports(rs.option.laser_power):
            depth_sensor.set_option(rs.option.laser_power, power)
        exposure = self.option("exposure")
        if exposure is not None:
            if str(exposure).lower() == "auto":
                depth_sensor.set_option(rs.option.enable_auto_exposure, 1.0)
            else:
                if depth_sensor.supports(rs.option.enable_auto_exposure):
                    depth_sensor.set_option(rs.option.enable_auto_exposure, 0.0)
                depth_sensor.set_option(rs.option.exposure, self.option("exposure", None, float))

    # FrameSource ---------------------------------------------------------------------------------------------
    def open(self) -> SensorInfo:
        rs = import_rs()
        self._rs = rs
        ctx = rs.context()
        devices = list(ctx.query_devices())
        serials = [device_info(rs, d)[1] for d in devices]
        if not devices:
            raise DeviceError("no RealSense camera is attached; plug one in (USB 3) or use file://REC.db3 or "
                              "synthetic://; `socketedge doctor` lists the cameras it sees")
        if self.target and self.target not in serials:
            raise DeviceError(f"no RealSense camera with serial {self.target}; attached: {', '.join(serials)}")
        self._filters = FilterSettings.from_source(self)  # option mistakes surface before the camera starts
        cfg = self._config(rs)
        self._pipeline = rs.pipeline(ctx)
        try:
            profile = self._pipeline.start(cfg)
        except RuntimeError as e:
            self._pipeline = None
            raise DeviceError(f"cannot start RealSense {self.target or serials[0]}: {e}; check the resolution/fps "
                              f"options against the camera's profiles (calibration/README.md)") from None
        try:
            self._setup(rs, ctx, profile)
        except BaseException:
            self.close()  # the camera is released whatever went wrong after it started
            raise
        return self.info

    def _setup(self, rs, ctx, profile) -> None:
        dev = profile.get_device()
        self._serial = device_info(rs, dev)[1]

        def changed(event):
            try:
                if event.was_removed(dev):
                    self._removed.set()
            except RuntimeError:
                self._removed.set()

        ctx.set_devices_changed_callback(changed)
        self._ctx = ctx
        self._apply_sensor_options(rs, dev)
        filters = self._filters
        align = self.option("align", True, bool)
        extra = {"filters": list(filters.names), "uri": self.uri}
        self.info = sensor_info(rs, dev, profile.get_streams(), align, extra)
        self._converter = FramesetConverter(rs, self._streams(), align, filters.build(rs), self.info.fps)

    def read(self) -> Frame | None:
        if self._pipeline is None:
            raise DeviceError("the RealSense source is not open; use it as a context manager")
        timeout = self.option("timeout", 5.0, float)
        deadline = time.monotonic() + timeout
        while True:
            if self._removed.is_set():
                raise DeviceError(f"RealSense {self._serial} was disconnected; every frame read so far is kept")
            try:
                ok, fs = self._pipeline.try_wait_for_frames(100)
            except RuntimeError as e:
                raise DeviceError(f"RealSense {self._serial} stopped delivering frames: {e}") from None
            if ok:
                frame = self._converter.convert(fs)
                if frame is not None:
                    return frame
            elif time.monotonic() > deadline:
                raise DeviceError(f"RealSense {self._serial} sent no frames for {timeout:g} s; check the cable "
                                  f"(USB 3) and that no other program uses the camera")

    @property
    def drops(self) -> int:
        return self._converter.drops if self._converter else 0

    def close(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass  # already stopped by an unplug
            self._pipeline = None
