"""The live loop: grab (own thread) → infer → optional temporal smoothing → sinks, with a summary at the end.

``run(config)`` is what `socketedge run` calls; ``run_live`` is the loop itself, taking an opened backend and a
source factory (so tests and benchmarks can hand it any FrameSource). The run ends at the end of a recording,
after ``max_frames`` predictions, on Ctrl-C (the camera is released and the summary still returned), or when
the overlay window is closed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from socketedge.capture.base import Frame, FrameSource, open_source
from socketedge.errors import ConfigError, DataError, ModelError
from socketedge.export.metadata import ModelCard
from socketedge.runtime.backends import Backend, open_backend
from socketedge.runtime.capture_thread import Backoff, CaptureThread, FrameQueue
from socketedge.runtime.meters import FpsMeter, LatencyMeter
from socketedge.runtime.sinks import (
    ConsoleSink,
    JsonLinesSink,
    OverlayWindow,
    Prediction,
    Sink,
    SinkContext,
    VideoSink,
    display_available,
)
from socketedge.runtime.smoothing import Smoother, make_smoother
from socketedge.utils.outputs import check_output_file
from socketedge.utils.signals import sigterm_as_interrupt

DEFAULT_CAMERA = "realsense://"  # the first RealSense found


class RunConfig(BaseModel):
    model: Path
    source: str = DEFAULT_CAMERA
    backend: str = "auto"
    provider: str = "auto"
    require_gpu: bool = False
    threads: int | None = None
    smooth: Literal["none", "avg", "hysteresis"] = "none"
    window: int = Field(5, ge=1)
    json_out: str | None = None  # "-" = stdout
    console: bool = True
    show: bool | None = None  # None: a window when a display is available, headless otherwise
    video: Path | None = None
    max_frames: int | None = Field(None, ge=1)
    allow_failed_parity: bool = False  # run a model whose card records a failed export parity check (warned)
    queue_size: int = Field(4, ge=1)
    drop: Literal["auto", "always", "never"] = "auto"  # auto: drop oldest for live cameras, wait for recordings
    reconnect_initial_s: float = 0.2
    reconnect_max_s: float = 5.0
    reconnect_attempts: int | None = None  # None: keep trying until Ctrl-C


@dataclass
class RunSummary:
    frames: int  # predictions made
    captured: int  # frames read from the source
    drops: int  # frames dropped because inference was behind a live camera
    losses: int  # times the camera disappeared
    reconnects: int  # times it was reopened
    elapsed_s: float
    fps: float
    latency_ms: dict[str, float]  # frame grabbed → prediction ready
    infer_ms: dict[str, float]  # model only
    histogram: dict[str, int]  # shown (smoothed) class → frames
    ended_by: str  # end_of_stream | max_frames | interrupted | window_closed
    backend: str = ""
    providers: list[str] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    loop_ms: float = float("nan")  # mean wall time per prediction in the consumer loop
    # the loop's own work per frame (frame taken from the queue → sinks done, minus the model), percentiles;
    # waiting for the camera's next frame is not counted
    own_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def frame_input(frame: Frame, card: ModelCard) -> np.ndarray:
    """The (1, C, H, W) raw array the model takes from ``frame`` (C = 1 for depth / NIR / thermal)."""
    image = frame.image(card.modality)
    if image is None:
        have = [m for m in ("depth", "rgb", "nir") if frame.image(m) is not None]
        raise DataError(f"the source gives no {card.modality} frames (it has {', '.join(have) or 'none'}) but the "
                        f"model classifies {card.modality}; pick a source that streams {card.modality}")
    try:
        want = np.dtype(card.input_dtype)  # uint16 depth, uint8 NIR/thermal; int32 for TensorRT (no uint16 there)
    except TypeError:
        raise ModelError(f"the model card's input_dtype {card.input_dtype!r} is not a numpy type; re-export") from None
    if image.dtype != want:
        if not np.issubdtype(image.dtype, np.integer):
            raise DataError(f"{card.modality} frames are {image.dtype}; the model takes raw {card.input_dtype}")
        image = image.astype(want)
    if image.ndim == 3:  # colour: HWC → CHW
        return np.ascontiguousarray(image.transpose(2, 0, 1))[None]
    return image[None, None]


def run_live(backend: Backend, open_frames: Callable[[], FrameSource], sinks: list[Sink],
             smoother: Smoother | None = None, max_frames: int | None = None, queue_size: int = 4,
             drop: str = "auto", backoff: Backoff | None = None, on_event: Callable[[str], None] | None = None,
             on_prediction: Callable[[Prediction], None] | None = None) -> RunSummary:
    """Classify every frame ``open_frames()`` yields until the stream ends, ``max_frames`` predictions, a sink
    asks to stop, or Ctrl-C. The source is opened, read and closed in the capture thread."""
    card = backend.card
    names = card.class_names
    smoother = smoother or make_smoother("none")
    queue = FrameQueue(queue_size, drop_oldest=drop == "always")
    capture = CaptureThread(open_frames, queue, backoff, on_event, drop)
    latency, infer, own, fps = LatencyMeter(), LatencyMeter(), LatencyMeter(), FpsMeter()
    histogram: Counter[int] = Counter()
    ended_by = "end_of_stream"
    n = 0
    t_start = time.perf_counter()
    with ExitStack() as stack, sigterm_as_interrupt():
        stack.callback(capture.stop)
        capture.start()
        try:
            info = capture.wait_opened()
            ctx = SinkContext(card=card, source_uri=capture.source.uri, source_fps=getattr(info, "fps", None),
                              backend=backend.describe())
            for sink in sinks:
                sink.open(ctx)
                stack.callback(sink.close)
            t_start = time.perf_counter()
            while max_frames is None or n < max_frames:
                item = queue.get(timeout=0.5)
                if item is None:
                    if queue.closed:
                        break
                    continue
                t_got = time.perf_counter()
                frame, t_grab = item
                x = frame_input(frame, card)
                t0 = time.perf_counter()
                probs, _ = backend.infer(x)
                t1 = time.perf_counter()
                raw = probs[0]
                shown, shown_probs = smoother.update(raw)
                t_ready = time.perf_counter()
                pred = Prediction(frame=frame.index, timestamp=frame.timestamp, class_index=shown, label=names[shown],
                                  score=float(shown_probs[shown]), probs=shown_probs, raw_index=int(raw.argmax()),
                                  raw_probs=raw, infer_ms=1000 * (t1 - t0), latency_ms=1000 * (t_ready - t_grab),
                                  fps=fps.tick(t_ready))
                infer.add(t1 - t0)
                latency.add(t_ready - t_grab)
                histogram[shown] += 1
                n += 1
                stop = False
                for sink in sinks:
                    stop |= sink.write(pred, frame) is False
                own.add(time.perf_counter() - t_got - (t1 - t0))
                if on_prediction is not None:
                    on_prediction(pred)
                if stop:
                    ended_by = "window_closed"
                    break
            else:
                ended_by = "max_frames"
        except KeyboardInterrupt:
            ended_by = "interrupted"
        t_end = time.perf_counter()
        capture.stop()
        if capture.error is not None and ended_by == "end_of_stream":
            raise capture.error
    elapsed = t_end - t_start if n else 0.0
    return RunSummary(
        frames=n, captured=capture.captured, drops=queue.drops, losses=capture.losses,
        reconnects=capture.reconnects, elapsed_s=elapsed, fps=n / elapsed if elapsed > 0 else 0.0,
        latency_ms=latency.percentiles_ms(), infer_ms={**infer.percentiles_ms(), "mean": infer.mean_ms},
        histogram={names[i]: c for i, c in sorted(histogram.items())}, ended_by=ended_by,
        backend=backend.name, providers=backend.providers, incidents=list(capture.incidents),
        loop_ms=1000 * elapsed / n if n else float("nan"), own_ms={**own.percentiles_ms(), "mean": own.mean_ms})


def failed_parity(card) -> str | None:
    """'<criterion> <worst> vs threshold <t>' when the model card records a failed export parity check."""
    if card is None or card.parity_passed is not False:
        return None
    p = card.parity
    try:
        return f"{p['criterion']} {float(p['worst']):.4g} vs threshold {float(p['threshold']):g}"
    except (KeyError, TypeError, ValueError):
        return "recorded as failed"


def build_sinks(config: RunConfig) -> list[Sink]:
    sinks: list[Sink] = []
    if config.console and config.json_out != "-":
        sinks.append(ConsoleSink())
    if config.json_out is not None:
        sinks.append(JsonLinesSink(config.json_out))
    show = display_available() if config.show is None else config.show
    if show:
        sinks.append(OverlayWindow())
    if config.video is not None:
        sinks.append(VideoSink(config.video))
    return sinks


def run(config: RunConfig, on_event: Callable[[str], None] | None = None,
        on_backend: Callable[[Backend], None] | None = None) -> RunSummary:
    """`socketedge run`: open the model and the source named in ``config`` and classify until the end."""
    if "://" not in config.source:
        raise ConfigError(f"--source {config.source!r} is not a URI; e.g. realsense://, file://rec.db3, "
                          "session://DIR, folder://DIR, synthetic://")
    if config.json_out not in (None, "-"):
        check_output_file(config.json_out, "--json", "predictions.jsonl")
    if config.video is not None:
        check_output_file(config.video, "--video", "run.mp4")
    first = [open_source(config.source)]  # built (not opened) now: a bad URI fails before the model loads

    def open_frames() -> FrameSource:
        return first.pop() if first else open_source(config.source)

    sinks = build_sinks(config)
    smoother = make_smoother(config.smooth, config.window)
    backoff = Backoff(config.reconnect_initial_s, 2.0, config.reconnect_max_s, config.reconnect_attempts)
    with open_backend(config.model, config.backend, config.provider, config.threads, config.require_gpu) as backend:
        failed = failed_parity(backend.card)
        if failed and not config.allow_failed_parity:
            raise ModelError(f"{config.model} failed its parity check at export ({failed}): it may not compute "
                             "what the adapted model does; re-export it, or pass --allow-failed-parity to run it")
        if failed:
            backend.warnings = [*getattr(backend, "warnings", []),
                                f"{config.model.name} FAILED its parity check at export ({failed}); its "
                                "predictions may differ from the adapted model's"]
        if on_backend is not None:
            on_backend(backend)
        return run_live(backend, open_frames, sinks, smoother, config.max_frames,
                        config.queue_size, config.drop, backoff, on_event)
