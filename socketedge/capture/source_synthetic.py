"""A virtual RGB-D camera (``synthetic://``): procedurally rendered scenes through the same interface as a real one.

Options (URI query or keyword arguments):
  size      square image size in pixels (default 96)
  fps       frame rate: timestamps are index / fps; frames are paced to it only with ``realtime=1`` (default 30)
  seed      random seed (default 0); the same seed gives the same stream
  classes   comma-separated shapes to show (default: the default task classes of ``socketedge synth``)
  frames    stop after N frames (default: endless, like a camera)
  realtime  1 to sleep so frames arrive at ``fps`` (default 0: as fast as they render)

Each frame shows one object; ``Frame.label`` is its true class name, so a live classifier can be scored. Colour and
depth come from one viewpoint (depth is aligned to colour), depth in millimetres (depth_scale 0.001).
"""

from __future__ import annotations

import time

import numpy as np

from socketedge.capture.base import Extrinsics, Frame, FrameSource, Intrinsics, SensorInfo, register_source
from socketedge.errors import ConfigError

STREAM_SPLIT = "stream"
PREFETCH = 16  # frames rendered together (grouped by class), which is about twice as fast as one by one


@register_source("synthetic")
class SyntheticSource(FrameSource):
    live = True

    def open(self) -> SensorInfo:
        from socketedge.synth.scene import SceneConfig
        from socketedge.synth.shapes import CATALOGUE, DEFAULT_TASK_CLASSES, SHAPES

        self._size = self.option("size", 96, int)
        self._fps = self.option("fps", 30.0, float)
        self._seed = self.option("seed", 0, int)
        self._frames = self.option("frames", None, int)
        self._realtime = self.option("realtime", False, bool)
        raw = self.options.get("classes")
        names = list(raw) if isinstance(raw, (list, tuple)) else (self.option("classes", "", str) or "").split(",")
        self._classes = [c.strip() for c in names if c.strip()] or list(DEFAULT_TASK_CLASSES)
        if not 16 <= self._size <= 1024:
            raise ConfigError(f"synthetic option size={self._size}; expected 16..1024 pixels")
        if self._fps <= 0:
            raise ConfigError(f"synthetic option fps={self._fps}; expected a positive frame rate")
        if self._frames is not None and self._frames < 0:
            raise ConfigError(f"synthetic option frames={self._frames}; expected a count ≥ 0 (omit it: endless)")
        for name in self._classes:
            if name not in SHAPES:
                raise ConfigError(f"synthetic option classes: {SHAPES.unknown_message(name)} "
                                  f"(all shapes: {', '.join(CATALOGUE)})")
        self.live = self._frames is None
        self._scene = SceneConfig()
        self._index, self._buffer, self._start = 0, {}, None

        fov = np.radians(self._scene.fov_deg)
        focal = self._size / 2 / np.tan(fov / 2)
        c = self._size / 2 - 0.5  # rays go through pixel centres; the optical axis hits the image centre
        intr = Intrinsics(self._size, self._size, focal, focal, c, c)
        sensor = self._scene.sensor
        self.info = SensorInfo(
            sensor="synthetic", serial=f"seed-{self._seed}", depth_scale=0.001, modalities=("rgb", "depth"),
            color_intrinsics=intr, depth_intrinsics=intr,
            depth_to_color=Extrinsics([1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], [0.0, 0.0, 0.0]),
            depth_aligned_to_color=True, fps=self._fps,
            extra={"classes": self._classes, "generator": "socketedge.synth",
                   "depth_range_m": [sensor.min_range_m, sensor.max_range_m], "baseline_m": sensor.baseline_m})
        return self.info

    def frame_class(self, index: int) -> str:
        """The class shown in frame ``index``: a pure function of (seed, index)."""
        rng = np.random.default_rng(np.random.SeedSequence([self._seed, 0x5EED, index]))
        return self._classes[int(rng.integers(len(self._classes)))]

    def _render_ahead(self) -> None:
        from socketedge.synth.generate import ImageSpec, render_batch

        end = self._index + PREFETCH if self._frames is None else min(self._index + PREFETCH, self._frames)
        by_class: dict[str, list[int]] = {}
        for i in range(self._index, end):
            by_class.setdefault(self.frame_class(i), []).append(i)
        for cls, indices in by_class.items():
            rgb, depth = render_batch([ImageSpec(STREAM_SPLIT, cls, i, self._seed) for i in indices], self._size,
                                      self._scene)
            for k, i in enumerate(indices):
                self._buffer[i] = (cls, rgb[k], depth[k])

    def read(self) -> Frame | None:
        if self._frames is not None and self._index >= self._frames:
            return None
        if self._index not in self._buffer:
            self._render_ahead()
        cls, rgb, depth = self._buffer.pop(self._index)
        i = self._index
        if self._realtime:
            now = time.monotonic()
            if self._start is None:
                self._start = now - i / self._fps
            wait = self._start + i / self._fps - now
            if wait > 0:
                time.sleep(wait)
        self._index += 1
        return Frame(index=i, timestamp=i / self._fps, color=rgb, depth=depth, label=cls,
                     meta={"class_index": self._classes.index(cls)})
