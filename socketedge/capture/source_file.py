"""Recordings (``file://REC``): RealSense rosbag2 ``.db3`` (pyrealsense2 >= 2.58) and legacy ``.bag``, Azure Kinect
``.mkv``.

Playback is non-real-time (every frame is delivered, however slow the consumer), never repeats, and ``read()``
returns None at the end of the file. A corrupt or truncated recording raises a one-line DataError naming the file
and the frame where reading stopped. Options: ``align`` (default 1), ``filters`` and the filter settings of
``realsense://`` (see source_realsense.py), ``timeout`` (seconds without progress before giving up).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from pathlib import Path

from socketedge.capture.base import Frame, FrameSource, SensorInfo, register_source
from socketedge.capture.source_realsense import FilterSettings, FramesetConverter, import_rs, sensor_info
from socketedge.errors import DataError

REALSENSE_SUFFIXES = (".db3", ".bag")
KINECT_SUFFIXES = (".mkv",)

_sdk_errors: deque[tuple[int, str]] = deque(maxlen=256)  # (sequence number, message): bounded in long runs
_sdk_count = 0
_sdk_lock = threading.Lock()
_sdk_logging = False


def _watch_sdk_errors(rs) -> int:
    """librealsense reports a frame it cannot read from a file only in its log: collect error lines once per
    process. Returns the number of lines seen so far (a source checks what arrived after it opened)."""
    global _sdk_logging
    with _sdk_lock:
        if not _sdk_logging:
            def collect(_severity, message):
                try:
                    text = message.raw()
                except Exception:  # noqa: BLE001 - older wrappers expose only str()
                    text = str(message)
                global _sdk_count
                with _sdk_lock:
                    _sdk_errors.append((_sdk_count, text.strip()))
                    _sdk_count += 1

            rs.log_to_callback(rs.log_severity.error, collect)
            _sdk_logging = True
        return _sdk_count


def _errors_since(start: int) -> list[str]:
    with _sdk_lock:
        return [e for n, e in _sdk_errors if n >= start and ("file" in e.lower() or "read" in e.lower())]


def count_db3_frames(path: Path) -> dict[str, int]:
    """Frames per stream stored in a rosbag2 recording, read with sqlite3 (no SDK): {'depth': n, 'color': m}."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT t.name, COUNT(*) FROM messages m JOIN topics t ON m.topic_id = t.id "
                "WHERE t.name LIKE '%/image/data%' GROUP BY t.name").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        raise DataError(f"recording {path} is not a readable rosbag2 file ({e}); re-record it") from None
    counts: dict[str, int] = {}
    for name, n in rows:
        stream = name.split("/")[3].split("_")[0].lower() if name.count("/") >= 4 else name
        counts[stream] = counts.get(stream, 0) + int(n)
    return counts


class RealSenseRecording(FrameSource):
    """A .db3/.bag played by pyrealsense2: the playback device is switched to non-real-time before any sensor
    starts (through a pipeline the first frames would already be gone), and its sensors feed one syncer."""

    live = False

    def __init__(self, uri: str, path: Path, **options):
        super().__init__(uri, **options)
        self.path = path
        self._sensors: list = []
        self._playback = None

    def open(self) -> SensorInfo:
        rs = import_rs()
        self._rs = rs
        self._expected = count_db3_frames(self.path) if self.path.suffix == ".db3" else {}
        self._log_start = _watch_sdk_errors(rs)
        try:
            dev = rs.context().load_device(str(self.path))
        except RuntimeError as e:
            reason = str(e).splitlines()[0]
            raise DataError(f"recording {self.path} cannot be opened before its first frame: {reason}") from None
        self._playback = dev.as_playback()
        self._playback.set_real_time(False)
        self._sync = rs.syncer()  # queue of 1: non-real-time playback waits for the reader instead of dropping
        profiles = []
        try:
            for sensor in dev.query_sensors():
                wanted = [p for p in sensor.get_stream_profiles()
                          if p.stream_type() in (rs.stream.color, rs.stream.depth, rs.stream.infrared)]
                if wanted:
                    sensor.open(wanted)
                    self._sensors.append(sensor)
                    profiles += wanted
        except RuntimeError as e:
            self.close()
            raise DataError(f"recording {self.path} cannot be opened before its first frame: {e}") from None
        kinds = {p.stream_type() for p in profiles}
        streams = tuple(name for name, kind in (("color", rs.stream.color), ("depth", rs.stream.depth),
                                                ("infrared", rs.stream.infrared)) if kind in kinds)
        if not streams:
            self.close()
            raise DataError(f"recording {self.path} has no colour, depth or infrared stream")
        align = self.option("align", True, bool)
        filters = FilterSettings.from_source(self)
        self.info = sensor_info(rs, dev, profiles, align, {"recording": str(self.path),
                                                           "filters": list(filters.names)})
        self._converter = FramesetConverter(rs, streams, align, filters.build(rs), self.info.fps)
        # Playback starts with the first sensor: paused, no frame reaches a sensor that has not started yet.
        # resume() returns only once the reader has taken the first frames, so it runs beside the reader.
        self._playback.pause()
        for sensor in self._sensors:
            sensor.start(self._sync)
        self._resumer = threading.Thread(target=self._playback.resume, name="rs-playback-resume", daemon=True)
        self._resumer.start()
        return self.info

    def _corrupt(self, detail: str) -> DataError:
        n = self._converter.emitted
        return DataError(f"recording {self.path} is corrupt or truncated at frame {n} (frames 0-{n - 1} were "
                         f"read): {detail}; re-record it or keep the frames before it")

    def _check_complete(self) -> None:
        errors = _errors_since(self._log_start)
        if errors:
            raise self._corrupt(errors[0])
        for stream, expected in self._expected.items():
            seen = len(self._converter.seen.get(stream, ()))
            if stream in self._converter.seen and seen < expected - 1:  # the SDK may drop a stream's first frame
                raise self._corrupt(f"only {seen} of the {expected} {stream} frames it holds could be read")

    def read(self) -> Frame | None:
        if not self._sensors:
            return None
        rs = self._rs
        timeout = self.option("timeout", 10.0, float)
        deadline = time.monotonic() + timeout
        while True:
            ok, fs = self._sync.try_wait_for_frames(100)
            if ok:
                deadline = time.monotonic() + timeout
                frame = self._converter.convert(fs)
                if frame is not None:
                    return frame
                continue
            if self._playback.current_status() == rs.playback_status.stopped:
                self.close()
                self._check_complete()
                return None
            if time.monotonic() > deadline:
                raise self._corrupt(f"playback made no progress for {timeout:g} s")

    def close(self) -> None:
        if not self._sensors:
            return
        # Non-real-time playback blocks while the syncer holds an unread frame, and stop() waits for it: keep
        # taking frames on a helper thread until the sensors have stopped (and resume() has returned).
        done = threading.Event()

        def drain() -> None:
            while not done.is_set():
                self._sync.try_wait_for_frames(10)

        drainer = threading.Thread(target=drain, name="rs-playback-drain", daemon=True)
        drainer.start()
        try:
            resumer = getattr(self, "_resumer", None)
            if resumer is not None:
                resumer.join(timeout=10.0)
            for sensor in self._sensors:
                for step in (sensor.stop, sensor.close):
                    try:
                        step()
                    except RuntimeError:
                        pass  # never started, or already stopped at the end of the file
        finally:
            done.set()
            drainer.join(timeout=5.0)
            self._sensors = []


@register_source("file")
class FileSource(FrameSource):
    """Dispatches on the file extension; the chosen reader does the work. A ``profile`` supplies filter
    defaults, as for the camera that made the recording."""

    live = False

    def __init__(self, uri: str, **options):
        from socketedge.capture.profiles import with_profile

        super().__init__(uri, **with_profile(options))
        self._inner: FrameSource | None = None

    def _reader(self) -> FrameSource:
        path = Path(self.target).expanduser()
        if not path.exists():
            raise DataError(f"recording {path} does not exist")
        if not path.is_file():
            raise DataError(f"recording {path} is not a file; for a session or an image folder use "
                            f"session://{path} or folder://{path}")
        suffix = path.suffix.lower()
        if suffix in REALSENSE_SUFFIXES:
            return RealSenseRecording(self.uri, path, **self.options)
        if suffix in KINECT_SUFFIXES:
            from socketedge.capture.source_k4a import K4APlaybackSource

            return K4APlaybackSource(self.uri, path, **self.options)
        raise DataError(f"recording {path} has an unknown type {suffix or '(none)'}; expected "
                        f"{', '.join(REALSENSE_SUFFIXES + KINECT_SUFFIXES)}")

    def open(self) -> SensorInfo:
        self._inner = self._reader()
        try:
            self.info = self._inner.open()
        except BaseException:
            self._inner.close()
            raise
        return self.info

    def read(self) -> Frame | None:
        return self._inner.read() if self._inner is not None else None

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
