"""Capture in its own thread, so inference never stalls the camera.

Frames go through a bounded queue. For a live camera a full queue drops its oldest frame (counted), so the
classifier always sees the newest; for a finite source (recording, folder, session) the reader waits instead,
so every recorded frame is classified. A camera that disappears (DeviceError) is closed, reopened with
exponential backoff and reported through ``on_event``; the source is always released on exit, Ctrl-C included.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from socketedge.capture.base import Frame, FrameSource
from socketedge.errors import DeviceError


@dataclass
class Backoff:
    initial_s: float = 0.2
    factor: float = 2.0
    max_s: float = 5.0
    max_attempts: int | None = None  # consecutive failed reopen attempts before giving up; None = keep trying

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.initial_s * self.factor ** max(attempt - 1, 0))


class FrameQueue:
    """Bounded FIFO of (frame, grab time). ``drop_oldest``: a full queue discards its oldest item instead of
    blocking the producer.

    Wake-ups cost a thread switch each, so they are only sent to a side that is actually waiting, and a blocked
    producer is woken once the queue has drained to half, refilling several frames per switch."""

    def __init__(self, capacity: int, drop_oldest: bool):
        if capacity < 1:
            raise ValueError("queue capacity must be at least 1")
        self.capacity = capacity
        self.low_water = capacity // 2
        self.drop_oldest = drop_oldest
        self.drops = 0
        self._items: deque[tuple[Frame, float]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._producer_waiting = 0
        self._consumer_waiting = 0

    def put(self, item: tuple[Frame, float]) -> bool:
        """False when the queue was closed (the consumer has gone)."""
        with self._cond:
            while len(self._items) >= self.capacity and not self._closed:
                if self.drop_oldest:
                    self._items.popleft()
                    self.drops += 1
                    break
                self._producer_waiting += 1
                self._cond.wait()
                self._producer_waiting -= 1
            if self._closed:
                return False
            self._items.append(item)
            if self._consumer_waiting:
                self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> tuple[Frame, float] | None:
        """The oldest item, or None when closed and empty, or when ``timeout`` passes."""
        with self._cond:
            end = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                if self._closed:
                    return None
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._consumer_waiting += 1
                self._cond.wait(left)
                self._consumer_waiting -= 1
            item = self._items.popleft()
            if self._producer_waiting and len(self._items) <= self.low_water:
                self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)


class CaptureThread(threading.Thread):
    """Reads ``open_source()`` into ``queue`` until the stream ends, ``stop()`` is called or a non-recoverable
    error occurs (kept in ``error`` for the consumer to raise). The first open happens here too; call
    ``wait_opened()`` to get its SensorInfo or its error. ``drop``: auto (drop the oldest frame for live
    sources, wait for finite ones), always, never."""

    def __init__(self, open_source: Callable[[], FrameSource], queue: FrameQueue, backoff: Backoff | None = None,
                 on_event: Callable[[str], None] | None = None, drop: str = "auto"):
        super().__init__(name="socketedge-capture", daemon=True)
        if drop not in ("auto", "always", "never"):
            raise ValueError(f"drop must be auto, always or never, not {drop!r}")
        self.drop = drop
        self.open_source = open_source
        self.queue = queue
        self.backoff = backoff or Backoff()
        self.on_event = on_event or (lambda message: None)
        self.captured = 0
        self.losses = 0  # times the camera disappeared
        self.reconnects = 0  # times it was reopened
        self.incidents: deque[str] = deque(maxlen=100)  # a camera flapping for days must not grow memory
        self.ended = False  # the source reported the end of its stream
        self.error: BaseException | None = None
        self.info = None
        self.source: FrameSource | None = None  # the source currently open (tests check it was released)
        self._halt = threading.Event()
        self._opened = threading.Event()

    def stop(self, timeout: float = 10.0) -> None:
        self._halt.set()
        self.queue.close()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def wait_opened(self, timeout: float | None = None):
        self._opened.wait(timeout)
        if self.error is not None and self.info is None:
            raise self.error
        return self.info

    def run(self) -> None:
        attempt = 0
        lost_at: float | None = None
        try:
            while not self._halt.is_set():
                try:
                    source = self.open_source()
                    with source:
                        self.source = source
                        # decided after open: a source may only know then (synthetic:// with frames=N is finite)
                        self.queue.drop_oldest = source.live if self.drop == "auto" else self.drop == "always"
                        if self.info is None:
                            self.info = source.info
                            self._opened.set()
                        if lost_at is not None:
                            self.reconnects += 1
                            self._report(f"{source.uri}: reopened after {time.monotonic() - lost_at:.1f} s")
                            attempt, lost_at = 0, None
                        if self._pump(source):
                            return
                except DeviceError as e:
                    if self.info is None:  # never opened: no camera there, nothing to recover
                        raise
                    attempt += 1
                    lost_at = lost_at or time.monotonic()
                    if self.backoff.max_attempts is not None and attempt > self.backoff.max_attempts:
                        raise DeviceError(f"camera lost and not back after {attempt - 1} reopen attempts: {e}") \
                            from None
                    delay = self.backoff.delay(attempt)
                    if attempt == 1:
                        self.losses += 1
                    if attempt == 1:
                        self._report(f"camera lost ({e}); reopening in {delay:.1f} s")
                    else:
                        self._report(f"reopen attempt {attempt - 1} failed ({e}); retrying in {delay:.1f} s")
                    self._halt.wait(delay)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer thread, which raises it
            self.error = e
        finally:
            self.queue.close()
            self._opened.set()

    def _pump(self, source: FrameSource) -> bool:
        """Read until the end of the stream (True) or a stop request (True); DeviceError propagates."""
        while not self._halt.is_set():
            frame = source.read()
            if frame is None:
                self.ended = True
                return True
            self.captured += 1
            if not self.queue.put((frame, time.perf_counter())):
                return True
        return True

    def _report(self, message: str) -> None:
        self.incidents.append(message)
        self.on_event(message)
