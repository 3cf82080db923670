"""The live loop: summary counts, a source failing mid-stream is recovered, Ctrl-C releases the source, drops
are counted for live cameras, smoothing."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from runtime_fixtures import CLASSES, class_frames, reference_probs

from socketedge.errors import DataError, DeviceError
from socketedge.runtime.backends import open_backend
from socketedge.runtime.capture_thread import Backoff, FrameQueue
from socketedge.runtime.loop import run_live
from socketedge.runtime.sinks import Sink
from socketedge.runtime.smoothing import Hysteresis, MovingAverage, make_smoother

FAST = Backoff(initial_s=0.01, max_s=0.05)


class Collect(Sink):
    def __init__(self, stop_after: int | None = None, interrupt_at: int | None = None):
        self.preds, self.frames = [], []
        self.opened = self.closed = False
        self.stop_after, self.interrupt_at = stop_after, interrupt_at

    def open(self, ctx):
        super().open(ctx)
        self.opened = True

    def write(self, pred, frame):
        self.preds.append(pred)
        self.frames.append(frame.index)
        if self.interrupt_at is not None and len(self.preds) == self.interrupt_at:
            raise KeyboardInterrupt
        return None if self.stop_after is None or len(self.preds) < self.stop_after else False

    def close(self):
        self.closed = True


@pytest.fixture
def backend(onnx_model):
    with open_backend(onnx_model, threads=1) as b:
        yield b


def test_summary_counts_and_predictions_are_right(backend, scripted):
    frames = class_frames(12)
    factory, log = scripted(frames)
    sink = Collect()
    s = run_live(backend, factory, [sink])
    assert s.ended_by == "end_of_stream"
    assert (s.frames, s.captured, s.drops, s.losses, s.reconnects) == (12, 12, 0, 0, 0)
    assert s.histogram == {c: 3 for c in CLASSES}
    assert sink.frames == list(range(12)) and sink.opened and sink.closed
    for pred, frame in zip(sink.preds, frames):
        np.testing.assert_allclose(pred.raw_probs, reference_probs(frame.depth), atol=1e-5)
        assert pred.label == frame.label and pred.class_index == pred.raw_index
        assert pred.latency_ms >= pred.infer_ms > 0
    assert 0 < s.infer_ms["p50"] <= s.infer_ms["p99"] and s.latency_ms["p50"] <= s.latency_ms["p99"]
    assert s.fps > 0 and s.providers == ["CPUExecutionProvider"] and 0 < s.own_ms["p50"] <= s.own_ms["p99"]
    assert log["opens"] == log["closes"] == 1


def test_source_failing_mid_stream_is_recovered(backend, scripted):
    """The camera vanishes at frames 4 and 9, and the first reopen attempt after each loss fails too: every
    frame is still classified once, in order, and the incidents are reported."""
    frames = class_frames(14)
    factory, log = scripted(frames, fail_at=[4, 9], fail_opens=1)
    events, sink = [], Collect()
    s = run_live(backend, factory, [sink], backoff=FAST, on_event=events.append)
    assert s.ended_by == "end_of_stream"
    assert sink.frames == list(range(14)) and s.frames == s.captured == 14
    assert (s.losses, s.reconnects) == (2, 2)
    assert log["opens"] == 3 and log["closes"] == 3  # every opened source was released
    assert sum("camera lost" in e for e in events) == 2
    assert sum("reopen attempt 1 failed" in e for e in events) == 2
    assert sum("reopened" in e for e in events) == 2
    assert s.incidents == events


def test_camera_that_never_comes_back_fails_after_the_attempts(backend, scripted):
    factory, log = scripted(class_frames(10), fail_at=[3], fail_opens=100)
    with pytest.raises(DeviceError, match="not back after 2 reopen attempts"):
        run_live(backend, factory, [Collect()], backoff=Backoff(0.01, 2.0, 0.02, max_attempts=2))
    assert log["opens"] == log["closes"] == 1


def test_no_camera_at_start_is_one_error_not_a_retry_loop(backend, scripted):
    factory, log = scripted(class_frames(3))
    log["open_failures_left"] = 1
    sink = Collect()
    with pytest.raises(DeviceError, match="no device connected"):
        run_live(backend, factory, [sink], backoff=FAST)
    assert not sink.opened and log["opens"] == 0


def test_keyboard_interrupt_releases_the_source(backend, scripted):
    factory, log = scripted(class_frames(50), live=True, delay_s=0.002)
    sink = Collect(interrupt_at=5)
    s = run_live(backend, factory, [sink])
    assert s.ended_by == "interrupted" and s.frames == 5
    assert log["opens"] == 1 and log["closes"] == 1 and sink.closed
    assert not any(t.name == "socketedge-capture" and t.is_alive() for t in threading.enumerate())


def test_max_frames_and_window_close_end_the_run(backend, scripted):
    factory, log = scripted(class_frames(30))
    s = run_live(backend, factory, [Collect()], max_frames=7)
    assert (s.ended_by, s.frames) == ("max_frames", 7) and log["closes"] == 1
    factory, log = scripted(class_frames(30))
    s = run_live(backend, factory, [Collect(stop_after=3)])
    assert (s.ended_by, s.frames) == ("window_closed", 3) and log["closes"] == 1


class SlowBackend:
    """Wraps a backend with extra latency so a live camera outruns it."""

    def __init__(self, inner, delay_s):
        self.inner, self.delay_s = inner, delay_s

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def infer(self, frames):
        time.sleep(self.delay_s)
        return self.inner.infer(frames)


def test_live_camera_drops_oldest_and_counts_it(backend, scripted):
    factory, log = scripted(class_frames(60), live=True, delay_s=0.001)
    sink = Collect()
    s = run_live(SlowBackend(backend, 0.01), factory, [sink], queue_size=2)
    assert s.drops > 0
    assert s.frames + s.drops == s.captured == 60
    assert sink.frames == sorted(sink.frames) and sink.frames[-1] == 59  # newest frames kept, order preserved


def test_recording_is_never_dropped_even_when_inference_is_slow(backend, scripted):
    factory, _ = scripted(class_frames(20), live=False)
    s = run_live(SlowBackend(backend, 0.005), factory, [Collect()], queue_size=1)
    assert (s.drops, s.frames) == (0, 20)


def test_error_inside_the_source_surfaces_as_is(backend):
    from runtime_fixtures import ScriptedSource

    class Broken(ScriptedSource):
        def read(self):
            raise DataError("recording is truncated at frame 2")

    log = {}
    with pytest.raises(DataError, match="truncated"):
        run_live(backend, lambda: Broken([], log), [Collect()])
    assert log["closes"] == 1


def test_frame_without_the_model_modality_is_a_clear_error(backend, scripted):
    from socketedge.capture.base import Frame

    factory, _ = scripted([Frame(0, 0.0, color=np.zeros((8, 8, 3), np.uint8))])
    with pytest.raises(DataError, match="gives no depth frames .*has rgb"):
        run_live(backend, factory, [Collect()])


def test_frame_queue_drop_and_block():
    q = FrameQueue(2, drop_oldest=True)
    for i in range(5):
        assert q.put((i, 0.0))
    assert q.drops == 3 and [q.get(0)[0], q.get(0)[0]] == [3, 4] and q.get(0.01) is None
    q = FrameQueue(1, drop_oldest=False)
    q.put((0, 0.0))
    done = threading.Event()
    threading.Thread(target=lambda: (q.put((1, 0.0)), done.set()), daemon=True).start()
    assert not done.wait(0.05)  # full: the producer waits
    assert q.get(0)[0] == 0 and done.wait(1) and q.get(0)[0] == 1
    q.close()
    assert q.get() is None and q.put((2, 0.0)) is False


def test_smoothing_average_and_hysteresis():
    a, b = np.array([0.9, 0.1], np.float32), np.array([0.2, 0.8], np.float32)
    avg = MovingAverage(3)
    assert avg.update(a)[0] == 0
    idx, p = avg.update(b)
    np.testing.assert_allclose(p, (a + b) / 2, atol=1e-6)
    avg.update(b)
    idx, p = avg.update(b)  # window now holds b, b, b
    assert idx == 1 and np.allclose(p, b)
    h = Hysteresis(3)
    shown = [h.update(x)[0] for x in (a, b, b, a, b, b, b, b)]
    assert shown == [0, 0, 0, 0, 0, 0, 1, 1]  # a lone flicker never switches; 3 in a row does
    assert make_smoother("none", 1).update(b)[0] == 1
    with pytest.raises(Exception, match="window must be at least 1"):
        make_smoother("avg", 0)


def test_smoothing_runs_inside_the_loop(backend, scripted):
    frames = class_frames(12)  # classes cycle a b c d …: every frame differs from the last
    factory, _ = scripted(frames)
    sink = Collect()
    s = run_live(backend, factory, [sink], smoother=make_smoother("hysteresis", 2))
    assert [p.label for p in sink.preds] == ["a"] * 12  # no class ever wins 2 frames in a row
    assert [CLASSES[p.raw_index] for p in sink.preds] == [f.label for f in frames]
    assert s.histogram == {"a": 12}


def test_frames_are_cast_to_the_card_input_type():
    """TensorRT engines take int32 depth (TensorRT has no uint16); the card says so and the loop follows it."""
    from runtime_fixtures import contract_card

    from socketedge.capture.base import Frame
    from socketedge.runtime.loop import frame_input

    depth = np.array([[0, 1200], [65535, 7]], np.uint16)
    x = frame_input(Frame(0, 0.0, depth=depth), contract_card())
    assert x.dtype == np.uint16 and x.shape == (1, 1, 2, 2)
    card = contract_card().model_copy(update={"input_dtype": "int32"})
    x = frame_input(Frame(0, 0.0, depth=depth), card)
    assert x.dtype == np.int32 and x[0, 0].tolist() == [[0, 1200], [65535, 7]]
