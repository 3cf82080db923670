"""`socketedge capture`: frames from any source URI into a session, with live status (frames, fps, drops).

Stops after ``frames`` written frames, after ``duration`` seconds, at the end of a finite source, on Ctrl-C or
when the camera disappears; in every case the session holds every completed frame and its manifest is closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from socketedge.capture.base import Frame, open_source, parse_uri
from socketedge.capture.recorder import COLOR_FORMATS, MODES, SessionWriter
from socketedge.errors import ConfigError, DeviceError
from socketedge.utils.outputs import check_output_dir
from socketedge.utils.signals import StopFlag


class CaptureConfig(BaseModel):
    source: str
    out: Path
    mode: str = "paired"
    label: str | None = None
    frames: int | None = Field(None, ge=1)
    duration: float | None = Field(None, gt=0)
    every: int = Field(1, ge=1)
    preview: bool = False
    record: Path | None = None
    profile: str | None = None
    modality: str | None = None  # the target modality to keep (default: depth)
    color_format: str = "png"
    options: dict = Field(default_factory=dict)  # extra source options (override the URI query and the profile)


@dataclass
class CaptureStatus:
    written: int
    seen: int
    drops: int
    fps: float
    elapsed: float


@dataclass
class CaptureResult:
    out: Path
    written: int
    seen: int
    drops: int
    elapsed: float
    stopped_by: str  # "frames", "duration", "end", "interrupted", "device", "preview", "write_error"
    capture_id: int
    sensor: str
    error: str | None = None

    @property
    def fps(self) -> float:
        return self.seen / self.elapsed if self.elapsed > 0 else 0.0


def _check(config: CaptureConfig) -> dict:
    if config.mode not in MODES:
        raise ConfigError(f"--mode {config.mode}: expected one of {', '.join(MODES)}")
    if config.color_format not in COLOR_FORMATS:
        raise ConfigError(f"--color-format {config.color_format}: expected one of {', '.join(COLOR_FORMATS)}")
    check_output_dir(config.out, "--out")
    scheme = parse_uri(config.source)[0]
    options = dict(config.options)
    if config.profile:
        from socketedge.capture.profiles import load_profile

        load_profile(config.profile)  # an unknown name fails here, before any device opens
        options["profile"] = config.profile
    if config.record is not None:
        if scheme != "realsense":
            raise ConfigError(f"--record keeps the RealSense SDK's raw recording; it needs a realsense:// source, "
                              f"not {scheme}://")
        if config.record.suffix != ".db3":
            raise ConfigError(f"--record {config.record}: pyrealsense2 >= 2.58 writes rosbag2; name it *.db3")
        config.record.parent.mkdir(parents=True, exist_ok=True)
        options["record"] = str(config.record)
    return options


class _Preview:
    """An OpenCV window with colour and colourised depth side by side; q or Esc stops the capture."""

    def __init__(self):
        import cv2

        self.cv2 = cv2
        try:
            cv2.namedWindow("socketedge capture", cv2.WINDOW_NORMAL)
        except cv2.error:
            raise ConfigError("--preview needs an OpenCV build with GUI support (opencv-python, not "
                              "opencv-python-headless) and a display; capture without --preview") from None

    def show(self, frame: Frame) -> bool:
        import numpy as np

        cv2 = self.cv2
        panels = []
        if frame.color is not None:
            panels.append(cv2.cvtColor(frame.color, cv2.COLOR_RGB2BGR))
        if frame.depth is not None:
            d = cv2.convertScaleAbs(frame.depth, alpha=255.0 / max(1, int(np.percentile(frame.depth, 99))))
            d = cv2.applyColorMap(d, cv2.COLORMAP_JET)
            if panels:
                d = cv2.resize(d, (panels[0].shape[1], panels[0].shape[0]), interpolation=cv2.INTER_NEAREST)
            panels.append(d)
        if panels:
            cv2.imshow("socketedge capture", np.hstack(panels))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        self.cv2.destroyWindow("socketedge capture")


def capture(config: CaptureConfig, on_status: Callable[[CaptureStatus], None] | None = None) -> CaptureResult:
    """Capture into ``config.out`` (a new or existing session). Never raises for Ctrl-C, SIGTERM, an unplugged
    camera or a write error (disk full): the result says why it stopped (``stopped_by`` / ``error``) and the
    session keeps every completed frame."""
    options = _check(config)
    preview = _Preview() if config.preview else None
    written = seen = 0
    drops = 0
    stopped_by, error = "end", None
    start = time.monotonic()
    try:
        with open_source(config.source, **options) as src:
            settings = {k: v for k, v in {**src.options, "every": config.every}.items()
                        if isinstance(v, (str, int, float, bool))}
            # Ctrl-C or SIGTERM (`kill`, `docker stop`) stops at the next frame boundary, so every frame written
            # is listed and counted; a second Ctrl-C stops at once.
            with (SessionWriter(config.out, src.info, config.source, config.mode, config.label, config.modality,
                                config.color_format, settings) as writer,
                  StopFlag(also_sigterm=True, message="[yellow]stopping after this frame (Ctrl-C again to stop at "
                                                      "once)[/]") as stop):
                try:
                    while True:
                        if stop.requested:
                            stopped_by = "interrupted"
                            break
                        elapsed = time.monotonic() - start
                        if config.frames is not None and written >= config.frames:
                            stopped_by = "frames"
                            break
                        if config.duration is not None and elapsed >= config.duration:
                            stopped_by = "duration"
                            break
                        try:
                            frame = src.read()
                        except DeviceError as e:
                            stopped_by, error = "device", str(e)
                            break
                        if frame is None:
                            stopped_by = "end"
                            break
                        seen += 1
                        drops = int(frame.meta.get("drops", drops))
                        if (seen - 1) % config.every == 0:
                            try:
                                writer.write(frame)
                            except OSError:  # disk full, …: stop here; every frame completed before it is kept
                                stopped_by = "write_error"
                                break
                            written += 1
                        if preview is not None and not preview.show(frame):
                            stopped_by = "preview"
                            break
                        if on_status is not None:
                            el = time.monotonic() - start
                            on_status(CaptureStatus(written, seen, drops, seen / el if el > 0 else 0.0, el))
                except KeyboardInterrupt:
                    stopped_by = "interrupted"
                failed = writer.close(stopped_by=stopped_by, error=error)
                if failed is not None:
                    stopped_by, error = "write_error", writer.capture.get("error")
                written = writer.written
                capture_id = writer.capture["id"]
    finally:
        if preview is not None:
            preview.close()
    sensor = src.info.sensor if src.info else ""
    return CaptureResult(Path(config.out), written, seen, drops, time.monotonic() - start, stopped_by, capture_id,
                         sensor, error)
