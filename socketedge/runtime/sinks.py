"""Where predictions go: a console line each, JSON lines (stdout or a file), an overlay window (depth colour map
+ label + FPS) and an annotated video file. A sink is opened once, gets every prediction with its frame, and is
always closed; ``write`` returning False asks the loop to stop (the overlay window's q / Esc)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from socketedge.capture.base import Frame
from socketedge.errors import ConfigError, DataError
from socketedge.export.metadata import ModelCard


@dataclass
class Prediction:
    frame: int  # the source's frame index
    timestamp: float  # the source's timestamp (seconds)
    class_index: int  # after smoothing
    label: str
    score: float  # shown probability of the shown class
    probs: np.ndarray  # shown (smoothed) probabilities, (C,)
    raw_index: int  # the model's own argmax for this frame
    raw_probs: np.ndarray
    infer_ms: float  # model only
    latency_ms: float  # frame grabbed → prediction ready (queueing + inference + smoothing)
    fps: float = 0.0  # recent frame rate

    def to_json(self, class_names: list[str]) -> dict:
        return {"frame": self.frame, "timestamp": self.timestamp, "label": self.label,
                "class_index": self.class_index, "score": self.score,
                "probs": [float(p) for p in self.probs], "raw_label": class_names[self.raw_index],
                "raw_probs": [float(p) for p in self.raw_probs],
                "infer_ms": round(self.infer_ms, 4), "latency_ms": round(self.latency_ms, 4)}


@dataclass
class SinkContext:
    card: ModelCard
    source_uri: str
    source_fps: float | None = None
    backend: str = ""
    extra: dict = field(default_factory=dict)


class Sink:
    def open(self, ctx: SinkContext) -> None:
        self.ctx = ctx

    def write(self, pred: Prediction, frame: Frame) -> bool | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ConsoleSink(Sink):
    """One line per prediction on stderr (stdout stays free for JSON lines)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def write(self, pred: Prediction, frame: Frame) -> None:
        stream = self.stream or sys.stderr
        stream.write(f"frame {pred.frame:>6}  {pred.label:<20} {pred.score:6.3f}  "
                     f"infer {pred.infer_ms:7.2f} ms  latency {pred.latency_ms:7.2f} ms\n")


class JsonLinesSink(Sink):
    """One JSON object per prediction, to stdout (``-``) or a file; line-buffered so a reader (or a crash)
    always sees whole lines."""

    def __init__(self, target: str | Path = "-"):
        self.target = str(target)
        self._file: TextIO | None = None

    def open(self, ctx: SinkContext) -> None:
        super().open(ctx)
        if self.target != "-":
            path = Path(self.target)
            if path.parent and not path.parent.exists():
                raise ConfigError(f"--json {path}: folder {path.parent} does not exist; create it first")
            self._file = open(path, "w", buffering=1)  # noqa: SIM115 - closed in close()

    def write(self, pred: Prediction, frame: Frame) -> None:
        out = self._file or sys.stdout
        out.write(json.dumps(pred.to_json(self.ctx.card.class_names)) + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        else:
            sys.stdout.flush()


# ---------------------------------------------------------------- overlay rendering


def _display_range(card: ModelCard) -> tuple[float, float, float]:
    """(depth scale, near, far) in metres from the card's recorded preprocessing."""
    prep = card.preprocessing[0] if card.preprocessing else {}
    scale = card.depth_scale or prep.get("depth_scale") or 0.001
    return float(scale), float(prep.get("depth_near", 0.3)), float(prep.get("depth_far", 5.0))


def colorize(frame: Frame, card: ModelCard) -> np.ndarray:
    """The frame the model saw, as a BGR image: depth through a colour map (near = warm, invalid = black),
    NIR/thermal as gray / inferno."""
    import cv2

    image = frame.image(card.modality)
    if image is None:
        raise DataError(f"frame {frame.index} has no {card.modality} image to draw")
    if card.modality == "depth":
        scale, near, far = _display_range(card)
        metres = image.astype(np.float32) * scale
        unit = np.clip((metres - near) / max(far - near, 1e-6), 0.0, 1.0)
        bgr = cv2.applyColorMap((255.0 * (1.0 - unit)).astype(np.uint8), cv2.COLORMAP_TURBO)
        bgr[image == 0] = 0
        return bgr
    if card.modality == "rgb":
        return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if card.modality == "thermal":
        return cv2.applyColorMap(image, cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)


def render_overlay(frame: Frame, pred: Prediction, card: ModelCard, min_width: int = 480) -> np.ndarray:
    import cv2

    bgr = colorize(frame, card)
    if bgr.shape[1] < min_width:  # tiny test frames: scale up so the text stays legible
        f = min_width / bgr.shape[1]
        bgr = cv2.resize(bgr, (min_width, round(bgr.shape[0] * f)), interpolation=cv2.INTER_NEAREST)
    bar = 28
    cv2.rectangle(bgr, (0, 0), (bgr.shape[1], bar), (0, 0, 0), thickness=-1)
    text = f"{pred.label} {pred.score:.2f}   {pred.fps:4.1f} fps   {pred.latency_ms:5.1f} ms"
    cv2.putText(bgr, text, (8, bar - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return bgr


def gui_available() -> bool:
    """OpenCV was built with a window toolkit (opencv-python-headless has none)."""
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("NONE", "NO", "")
    return True


def display_available() -> bool:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    return gui_available()


class OverlayWindow(Sink):
    """A window with the colour-mapped frame, the label and the frame rate; q or Esc stops the run."""

    title = "socketedge"

    def __init__(self):
        self._check()  # at construction: fail before the camera or the model is opened

    @staticmethod
    def _check() -> None:
        if not display_available():
            raise ConfigError("--show needs a display and an OpenCV with GUI support; this machine has "
                              f"{'no display' if gui_available() else 'opencv-python-headless'} — drop --show "
                              "or use --video FILE")

    def open(self, ctx: SinkContext) -> None:
        super().open(ctx)
        import cv2

        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)

    def write(self, pred: Prediction, frame: Frame) -> bool:
        import cv2

        cv2.imshow(self.title, render_overlay(frame, pred, self.ctx.card))
        key = cv2.waitKey(1) & 0xFF
        visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        return key not in (ord("q"), 27) and visible

    def close(self) -> None:
        import cv2

        cv2.destroyWindow(self.title)
        cv2.waitKey(1)


class VideoSink(Sink):
    """The overlay, written to a video file (.mp4 → mp4v, .avi → MJPG) at the source's frame rate."""

    CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}

    def __init__(self, path: str | Path, fps: float | None = None):
        self.path = Path(path)
        if self.path.suffix.lower() not in self.CODECS:
            raise ConfigError(f"--video {self.path}: unsupported container; use one of "
                              f"{', '.join(self.CODECS)}")
        self.fps = fps
        self._writer = None
        self.frames = 0

    def write(self, pred: Prediction, frame: Frame) -> None:
        import cv2

        image = render_overlay(frame, pred, self.ctx.card)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*self.CODECS[self.path.suffix.lower()])
            fps = self.fps or self.ctx.source_fps or 30.0
            self._size = (image.shape[1], image.shape[0])
            self._writer = cv2.VideoWriter(str(self.path), fourcc, float(fps), self._size)
            if not self._writer.isOpened():
                raise DataError(f"cannot write video {self.path} (no encoder for {self.path.suffix}); try .avi")
        if (image.shape[1], image.shape[0]) != self._size:  # a source that changed resolution mid-run
            image = cv2.resize(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
