"""Azure Kinect / Orbbec Femto (K4A API) through pyk4a: ``k4a://[INDEX]`` live, and ``.mkv`` playback for
``file://``.

Depth is transformed into the colour camera with the SDK's calibration (``capture.transformed_depth``) unless
``align=0``. Options: ``color_resolution`` (720P, 1080P, 1440P, 1536P, 2160P, 3072P), ``depth_mode``
(NFOV_UNBINNED, NFOV_2X2BINNED, WFOV_UNBINNED, WFOV_2X2BINNED), ``fps`` (5, 15, 30), ``timeout`` (seconds),
``profile`` (calibration/ profile for defaults).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socketedge.capture.base import Extrinsics, Frame, FrameSource, Intrinsics, SensorInfo, register_source
from socketedge.errors import ConfigError, DataError, DeviceError, lazy_import

COLOR_SIZES = {"720P": (1280, 720), "1080P": (1920, 1080), "1440P": (2560, 1440), "1536P": (2048, 1536),
               "2160P": (3840, 2160), "3072P": (4096, 3072)}
DEPTH_SIZES = {"NFOV_2X2BINNED": (320, 288), "NFOV_UNBINNED": (640, 576), "WFOV_2X2BINNED": (512, 512),
               "WFOV_UNBINNED": (1024, 1024), "PASSIVE_IR": (1024, 1024)}


def import_k4a():
    return lazy_import("pyk4a", "kinect", "needed for k4a:// cameras and Azure Kinect .mkv recordings")


def _enum_name(value) -> str:
    name = getattr(value, "name", str(value))
    return name.replace("RES_", "")


def _intrinsics(pyk4a, calibration, which, size) -> Intrinsics | None:
    try:
        k = np.asarray(calibration.get_camera_matrix(which), dtype=float)
        dist = [float(v) for v in np.asarray(calibration.get_distortion_coefficients(which)).ravel()]
    except Exception:  # noqa: BLE001 - calibration queries vary across pyk4a versions; then leave it unknown
        return None
    return Intrinsics(width=size[0], height=size[1], fx=float(k[0, 0]), fy=float(k[1, 1]), ppx=float(k[0, 2]),
                      ppy=float(k[1, 2]), model="brown_conrady", coeffs=dist)


def k4a_sensor_info(pyk4a, calibration, color_res: str, depth_mode: str, align: bool, serial: str = "",
                    fps: float | None = None, extra: dict | None = None) -> SensorInfo:
    cal = pyk4a.CalibrationType
    color_size, depth_size = COLOR_SIZES.get(color_res), DEPTH_SIZES.get(depth_mode)
    color_i = _intrinsics(pyk4a, calibration, cal.COLOR, color_size) if color_size else None
    depth_i = _intrinsics(pyk4a, calibration, cal.DEPTH, depth_size) if depth_size else None
    to_color = None
    try:
        rot, trans = calibration.get_extrinsic_parameters(cal.DEPTH, cal.COLOR)
        to_color = Extrinsics(rotation=[float(v) for v in np.asarray(rot).T.ravel()],  # column-major, as RealSense
                              translation=[float(v) / 1000.0 for v in np.asarray(trans).ravel()])  # mm → m
    except Exception:  # noqa: BLE001
        pass
    return SensorInfo(sensor="Azure Kinect", serial=serial, firmware="", depth_scale=0.001,
                      modalities=("rgb", "depth"), color_intrinsics=color_i, depth_intrinsics=depth_i,
                      depth_to_color=to_color, depth_aligned_to_color=align, fps=fps, extra=extra or {})


def color_to_rgb(image: np.ndarray, color_format: str) -> np.ndarray:
    import cv2

    fmt = color_format.upper()
    if "MJPG" in fmt:
        bgr = cv2.imdecode(np.frombuffer(image.tobytes(), np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError("a colour frame is not a decodable JPEG")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if "NV12" in fmt:
        return cv2.cvtColor(image, cv2.COLOR_YUV2RGB_NV12)
    if "YUY2" in fmt:
        return cv2.cvtColor(image, cv2.COLOR_YUV2RGB_YUY2)
    return np.ascontiguousarray(image[..., 2::-1])  # BGRA32


def capture_to_frame(capture, index: int, align: bool, color_format: str) -> Frame | None:
    """A pyk4a capture → Frame; None for a capture missing colour or depth (unsynchronised start)."""
    color = capture.color
    depth = capture.transformed_depth if align else capture.depth
    if color is None or depth is None:
        return None
    ts_depth = getattr(capture, "depth_timestamp_usec", 0)
    ts_color = getattr(capture, "color_timestamp_usec", 0)
    return Frame(index=index, timestamp=float(ts_depth or ts_color) / 1e6,
                 color=color_to_rgb(color, color_format), depth=np.asarray(depth, dtype=np.uint16).copy(),
                 meta={"depth_timestamp_us": int(ts_depth), "color_timestamp_us": int(ts_color), "drops": 0})


@register_source("k4a")
class K4ASource(FrameSource):
    live = True

    def __init__(self, uri: str, **options):
        from socketedge.capture.profiles import with_profile

        super().__init__(uri, **with_profile(options))
        self._device = None

    def open(self) -> SensorInfo:
        pyk4a = import_k4a()
        self._pyk4a = pyk4a
        try:
            index = int(self.target or 0)
        except ValueError:
            raise ConfigError(f"k4a://{self.target}: the device is chosen by index (k4a://0, k4a://1)") from None
        count = pyk4a.connected_device_count()
        if count <= index:
            raise DeviceError(f"no Azure Kinect with index {index} ({count} attached); plug one in or use "
                              f"file://REC.mkv")
        res = str(self.option("color_resolution", "720P")).upper()
        mode = str(self.option("depth_mode", "NFOV_UNBINNED")).upper()
        fps = self.option("fps", 30, int)
        if res not in COLOR_SIZES or mode not in DEPTH_SIZES or fps not in (5, 15, 30):
            raise ConfigError(f"k4a options color_resolution={res} depth_mode={mode} fps={fps}: expected one of "
                              f"{', '.join(COLOR_SIZES)} / {', '.join(DEPTH_SIZES)} / 5, 15, 30")
        config = pyk4a.Config(color_resolution=getattr(pyk4a.ColorResolution, f"RES_{res}"),
                              depth_mode=getattr(pyk4a.DepthMode, mode), camera_fps=getattr(pyk4a.FPS, f"FPS_{fps}"),
                              color_format=pyk4a.ImageFormat.COLOR_BGRA32, synchronized_images_only=True)
        self._device = pyk4a.PyK4A(config=config, device_id=index)
        try:
            self._device.start()
        except pyk4a.K4AException as e:
            self._device = None
            raise DeviceError(f"cannot start Azure Kinect {index}: {e}; is another program using it?") from None
        self._align = self.option("align", True, bool)
        self._index = 0
        serial = str(getattr(self._device, "serial", ""))
        self.info = k4a_sensor_info(pyk4a, self._device.calibration, res, mode, self._align, serial, float(fps),
                                    {"uri": self.uri})
        return self.info

    def read(self) -> Frame | None:
        pyk4a = self._pyk4a
        timeout_ms = int(self.option("timeout", 5.0, float) * 1000)
        while True:
            try:
                capture = self._device.get_capture(timeout=timeout_ms)
            except pyk4a.K4ATimeoutException:
                raise DeviceError(f"Azure Kinect sent no frames for {timeout_ms / 1000:g} s; check the cable "
                                  f"and power supply") from None
            except pyk4a.K4AException as e:
                raise DeviceError(f"Azure Kinect stopped delivering frames (disconnected?): {e}") from None
            frame = capture_to_frame(capture, self._index, self._align, "BGRA32")
            if frame is not None:
                self._index += 1
                return frame

    def close(self) -> None:
        if self._device is not None:
            try:
                self._device.stop()
            except Exception:  # noqa: BLE001 - an unplugged device cannot be stopped twice
                pass
            self._device = None


class K4APlaybackSource(FrameSource):
    """An Azure Kinect .mkv recording (used by ``file://``); end of file → None, damage → DataError."""

    live = False

    def __init__(self, uri: str, path: Path, **options):
        super().__init__(uri, **options)
        self.path = path
        self._playback = None

    def open(self) -> SensorInfo:
        pyk4a = import_k4a()
        self._pyk4a = pyk4a
        playback = pyk4a.PyK4APlayback(str(self.path))
        try:
            playback.open()
        except pyk4a.K4AException as e:
            raise DataError(f"recording {self.path} cannot be opened before its first frame: {e}") from None
        self._playback = playback
        cfg = playback.configuration
        self._color_format = _enum_name(cfg.get("color_format", "BGRA32"))
        self._align = self.option("align", True, bool)
        self._index = 0
        fps = _enum_name(cfg.get("camera_fps", "")).replace("FPS_", "")
        self.info = k4a_sensor_info(pyk4a, playback.calibration, _enum_name(cfg.get("color_resolution", "")),
                                    _enum_name(cfg.get("depth_mode", "")), self._align, "",
                                    float(fps) if fps.isdigit() else None, {"recording": str(self.path)})
        return self.info

    def read(self) -> Frame | None:
        if self._playback is None:
            return None
        while True:
            try:
                capture = self._playback.get_next_capture()
            except EOFError:
                self.close()
                return None
            except self._pyk4a.K4AException as e:
                raise DataError(f"recording {self.path} is corrupt or truncated at frame {self._index}: {e}; "
                                f"keep the frames before it or re-record") from None
            frame = capture_to_frame(capture, self._index, self._align, self._color_format)
            if frame is not None:
                self._index += 1
                return frame

    def close(self) -> None:
        if self._playback is not None:
            self._playback.close()
            self._playback = None
