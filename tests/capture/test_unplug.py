"""A camera that disappears mid-capture: the session keeps every completed frame and the CLI says so in one line."""

from __future__ import annotations

import numpy as np

from socketedge.capture.base import SOURCES, Frame, FrameSource, SensorInfo, register_source
from socketedge.data.session import load_session
from socketedge.data.session_check import validate_session
from socketedge.errors import DeviceError

SCHEME = "test-unplug"


class UnpluggedAfter(FrameSource):
    """Behaves like a live camera whose read() raises DeviceError after ``after`` frames (as realsense:// and
    k4a:// do when the device is removed or stops sending)."""

    live = True

    def open(self) -> SensorInfo:
        self._n = 0
        self.closed = False
        return SensorInfo(sensor="unplugged test camera", serial="42", modalities=("rgb", "depth"))

    def read(self) -> Frame | None:
        if self._n >= self.option("after", 5, int):
            raise DeviceError("camera 42 was disconnected")
        self._n += 1
        return Frame(self._n - 1, self._n / 30, color=np.full((8, 8, 3), self._n, np.uint8),
                     depth=np.full((8, 8), 1000 + self._n, np.uint16))


if SCHEME not in SOURCES:
    register_source(SCHEME)(UnpluggedAfter)


def test_unplug_keeps_completed_frames(tmp_path, cli):
    out = tmp_path / "s"
    r = cli("capture", f"{SCHEME}://?after=7", "--out", out, "--label", "mug")
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: camera 42 was disconnected")
    assert "keeps the 7 frames" in r.stderr
    session = load_session(out)
    assert len(session.frames) == 7 and validate_session(out).ok
    entry = session.manifest["captures"][0]
    assert entry["stopped_by"] == "device" and entry["ended"] and "disconnected" in entry["error"]
