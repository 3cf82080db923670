"""Replay a capture session (``session://DIR``) frame by frame in capture order.

Options: ``label`` (only frames with that label), ``capture`` (only that capture run). The SensorInfo is the one
recorded with the frames (calibration, depth scale), so a replay looks like the camera that recorded it.
"""

from __future__ import annotations

from socketedge.capture.base import Extrinsics, Frame, FrameSource, Intrinsics, SensorInfo, register_source
from socketedge.data.session import load_session
from socketedge.data.imageio import read_image
from socketedge.errors import DataError


def sensor_from_dict(d: dict, modalities: list[str]) -> SensorInfo:
    def intr(x):
        return Intrinsics(**x) if x else None

    ext = d.get("depth_to_color")
    return SensorInfo(sensor=d.get("sensor", "session"), serial=d.get("serial", ""), firmware=d.get("firmware", ""),
                      depth_scale=float(d.get("depth_scale", 0.001)), modalities=tuple(modalities),
                      color_intrinsics=intr(d.get("color_intrinsics")), depth_intrinsics=intr(d.get("depth_intrinsics")),
                      depth_to_color=Extrinsics(**ext) if ext else None,
                      depth_aligned_to_color=bool(d.get("depth_aligned_to_color", False)), fps=d.get("fps"),
                      extra=dict(d.get("extra") or {}))


@register_source("session")
class SessionSource(FrameSource):
    live = False

    def open(self) -> SensorInfo:
        session = load_session(self.target)
        frames = session.frames
        label, capture = self.option("label"), self.option("capture", None, int)
        if label is not None:
            frames = [f for f in frames if f.label == label]
        if capture is not None:
            frames = [f for f in frames if f.capture == capture]
        if not frames:
            raise DataError(f"session {self.target} has no frames"
                            + (f" with label {label!r}" if label else "")
                            + (f" in capture {capture}" if capture is not None else ""))
        self._session = session
        self._frames = sorted(frames, key=lambda f: f.id)
        self._pos = 0
        captures = {c.get("id"): c for c in session.manifest.get("captures", [])}
        first = captures.get(self._frames[0].capture, {})
        sensor = first.get("sensor") or session.sensor
        self.info = sensor_from_dict(sensor, session.modalities)
        self.info.extra = {**self.info.extra, "session": str(session.root)}
        return self.info

    def read(self) -> Frame | None:
        if self._pos >= len(self._frames):
            return None
        f = self._frames[self._pos]
        images = {m: read_image(self._session.root / rel, m) for m, rel in f.files.items()}
        frame = Frame(index=self._pos, timestamp=f.timestamp, color=images.get("rgb"), depth=images.get("depth"),
                      infrared=images.get("nir", images.get("thermal")), label=f.label,
                      meta={**f.meta, "session_id": f.id, "capture": f.capture})
        self._pos += 1
        return frame
