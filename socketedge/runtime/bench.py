"""`socketedge bench`: latency and throughput of a model per backend, precision and batch size, and the live
loop's own overhead per frame (the whole run loop on in-memory frames minus the model's latency)."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from socketedge.capture.base import Frame, FrameSource, SensorInfo
from socketedge.errors import ConfigError, DeviceError, MissingExtraError
from socketedge.export.metadata import ModelCard
from socketedge.runtime.backends import (
    BACKENDS,
    Backend,
    backend_for,
    backend_names,
    open_backend,
    parse_backend_spec,
)
from socketedge.runtime.meters import LatencyMeter
from socketedge.utils.progress import make_progress


class BenchConfig(BaseModel):
    models: list[Path]
    backends: list[str] = Field(default_factory=lambda: ["auto"])  # e.g. onnxruntime-cpu, onnxruntime-cuda
    batches: list[int] = Field(default_factory=lambda: [1, 8])
    threads: int | None = Field(None, ge=1)
    height: int = Field(480, ge=1)
    width: int = Field(640, ge=1)
    warmup: int = Field(10, ge=0)
    iters: int = Field(100, ge=1)
    loop_frames: int = Field(300, ge=0)  # frames through the live loop for its overhead; 0 skips it
    seed: int = 0


@dataclass
class BenchRow:
    model: str
    backend: str
    providers: str
    precision: str
    batch: int
    threads: int | None
    median_ms: float  # per batch
    p90_ms: float
    p99_ms: float
    mean_ms: float
    frames_per_s: float  # batch / mean latency

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LoopOverhead:
    model: str
    backend: str
    frames: int
    loop_ms: float  # mean wall time per frame through run_live
    model_ms: float  # mean model latency, same frames, measured in the same run
    overhead_ms: float  # loop_ms - model_ms (medians over alternating rounds)
    overhead_pct: float
    # the same, decomposed inside the loop runs themselves: wall time per frame minus the time spent in infer()
    # for those very frames, so machine load that slows the model cancels out
    in_loop_model_ms: float = float("nan")
    in_loop_overhead_ms: float = float("nan")
    in_loop_overhead_pct: float = float("nan")
    # per-frame medians inside the loop: its own work (queue → sinks, minus the model) and the model's time;
    # robust to the scheduler stalls a loaded machine adds to means
    own_p50_ms: float = float("nan")
    infer_p50_ms: float = float("nan")
    own_pct: float = float("nan")  # own_p50 / infer_p50

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BenchReport:
    rows: list[BenchRow]
    overhead: list[LoopOverhead]
    skipped: list[str]  # "backend: why" for backends this machine cannot run
    # model name → the comparison `export --precision auto` recorded in its card, when it was chosen that way
    precision_choices: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"rows": [r.to_dict() for r in self.rows], "overhead": [o.to_dict() for o in self.overhead],
                "skipped": self.skipped, "precision_choices": self.precision_choices}


def random_frames(card: ModelCard, batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Frames with plausible values: depth 0.3–5 m in sensor units (some invalid zeros), or 8-bit intensity."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(card.input_dtype)
    if card.modality == "depth":
        scale = card.depth_scale or 0.001
        x = rng.uniform(0.3 / scale, 5.0 / scale, (batch, 1, height, width)).astype(dtype)
        x[rng.random(x.shape) < 0.05] = 0
        return x
    channels = 3 if card.modality == "rgb" else 1
    return rng.integers(0, 256, (batch, channels, height, width)).astype(dtype)


def time_backend(backend: Backend, frames: np.ndarray, warmup: int, iters: int) -> LatencyMeter:
    for _ in range(warmup):
        backend.infer(frames)
    meter = LatencyMeter(capacity=max(iters, 1))
    for _ in range(iters):
        t0 = time.perf_counter()
        backend.infer(frames)
        meter.add(time.perf_counter() - t0)
    return meter


def time_interleaved(backends: dict[str, Backend], frames: np.ndarray, warmup: int,
                     iters: int) -> dict[str, LatencyMeter]:
    """Latency of several backends on the same frames, timed round-robin (run i of every backend, then run
    i + 1, …) so load that comes and goes on a shared machine hits every backend alike and their ratios hold."""
    for backend in backends.values():
        time_backend(backend, frames, warmup, 0)
    meters = {name: LatencyMeter(capacity=max(iters, 1)) for name in backends}
    for _ in range(iters):
        for name, backend in backends.items():
            t0 = time.perf_counter()
            backend.infer(frames)
            meters[name].add(time.perf_counter() - t0)
    return meters


def choice_table(record: dict, title: str | None = None):
    """The ``--precision auto`` comparison stored in a model card (``extra["precision_auto"]``) as a rich table."""
    from rich.table import Table

    base = next((c["median_ms"] for c in record["candidates"] if c["name"] == "fp32"), None)
    t = Table(title=title or f"--precision auto: {record['chosen']} chosen ({record['backend']}, "
                             f"{record['frame'][0]}x{record['frame'][1]} frames)",
              caption=record["reason"])
    for col in ("candidate", "median ms", "p90 ms", "× fp32 speed", "top-1 vs fp32", "mean |Δp| (TV)", "kernels",
                "verdict"):
        t.add_column(col, justify="right" if col.endswith(("ms", "speed", "fp32")) else "left")
    for c in record["candidates"]:
        speed = f"{base / c['median_ms']:.2f}" if base and c.get("median_ms") else "-"
        verdict = "[green]chosen[/]" if c["name"] == record["chosen"] else c.get("verdict", "")
        t.add_row(c["name"], f"{c['median_ms']:.2f}" if c.get("median_ms") else "-",
                  f"{c['p90_ms']:.2f}" if c.get("p90_ms") else "-", speed,
                  f"{100 * c['agreement']:.2f}%" if c.get("agreement") is not None else "-",
                  f"{c['mean_tv']:.4f}" if c.get("mean_tv") is not None else "-", c.get("kernels") or "-", verdict)
    return t


class RepeatSource(FrameSource):
    """``count`` copies of one in-memory frame: the loop's own cost with no camera or decoder in the way."""

    scheme = "repeat"

    def __init__(self, frame: Frame, count: int):
        super().__init__(f"repeat://{count}")
        self.frame, self.count, self.i = frame, count, 0

    def open(self) -> SensorInfo:
        self.i = 0
        return SensorInfo(sensor="in-memory", modalities=("depth",))

    def read(self) -> Frame | None:
        if self.i >= self.count:
            return None
        self.i += 1
        f = self.frame
        return Frame(index=self.i - 1, timestamp=float(self.i), depth=f.depth, infrared=f.infrared, color=f.color)


def single_frame(card: ModelCard, height: int, width: int, seed: int = 0) -> Frame:
    x = random_frames(card, 1, height, width, seed)[0]
    if card.modality == "depth":
        return Frame(0, 0.0, depth=x[0])
    if card.modality == "rgb":
        return Frame(0, 0.0, color=x.transpose(1, 2, 0).copy())
    return Frame(0, 0.0, infrared=x[0])


def loop_overhead(backend: Backend, frames: int = 300, height: int = 480, width: int = 640,
                  warmup: int = 10, rounds: int = 5) -> LoopOverhead:
    """Wall time per frame of ``run_live`` (no sinks, no smoothing, frames from memory) against the model alone
    on the same frame. The two alternate in ``rounds`` chunks and the medians are reported, so a machine whose
    load drifts during the measurement affects both sides alike."""
    from socketedge.runtime.loop import frame_input, run_live

    frame = single_frame(backend.card, height, width)
    x = frame_input(frame, backend.card)
    time_backend(backend, x, warmup, 0)
    per = max(frames // max(rounds, 1), 1)
    model_ms, loop_ms, infer_ms, own_p50, infer_p50, total = [], [], [], [], [], 0
    for _ in range(max(rounds, 1)):
        model_ms.append(time_backend(backend, x, 0, per).mean_ms)
        summary = run_live(backend, lambda: RepeatSource(frame, per), sinks=[], drop="never")
        loop_ms.append(summary.loop_ms)
        infer_ms.append(summary.infer_ms["mean"])
        own_p50.append(summary.own_ms["p50"])
        infer_p50.append(summary.infer_ms["p50"])
        total += summary.frames
    loop, model = statistics.median(loop_ms), statistics.median(model_ms)
    overhead = statistics.median(lo - mo for lo, mo in zip(loop_ms, model_ms))
    pct = 100.0 * statistics.median(lo / mo - 1.0 for lo, mo in zip(loop_ms, model_ms))
    in_loop = [lo - mo for lo, mo in zip(loop_ms, infer_ms)]
    return LoopOverhead(model=backend.model.name, backend=backend.describe(), frames=total, loop_ms=loop,
                        model_ms=model, overhead_ms=overhead, overhead_pct=pct,
                        in_loop_model_ms=statistics.median(infer_ms), in_loop_overhead_ms=statistics.median(in_loop),
                        in_loop_overhead_pct=100.0 * statistics.median(
                            d / mo for d, mo in zip(in_loop, infer_ms)),
                        own_p50_ms=statistics.median(own_p50), infer_p50_ms=statistics.median(infer_p50),
                        own_pct=100.0 * statistics.median(o / i for o, i in zip(own_p50, infer_p50)))


def default_backends(model: Path) -> list[str]:
    """Every backend this machine can run ``model`` with: onnxruntime on CPU plus each GPU provider present."""
    kind = backend_for(model)
    if kind != "onnxruntime":
        return [kind]
    import onnxruntime as ort

    available = ort.get_available_providers()
    out = ["onnxruntime-cpu"]
    out += ["onnxruntime-cuda"] if "CUDAExecutionProvider" in available else []
    out += ["onnxruntime-tensorrt"] if "TensorrtExecutionProvider" in available else []
    return out


def bench(config: BenchConfig) -> BenchReport:
    backend_names()  # registers the built-in backends
    if any(b < 1 for b in config.batches):
        raise ConfigError(f"--batch sizes must be positive, got {config.batches}")
    rows: list[BenchRow] = []
    overheads: list[LoopOverhead] = []
    skipped: list[str] = []
    choices: dict[str, dict] = {}
    plan = [(m, b) for m in config.models for b in (default_backends(m) if config.backends == ["auto"]
                                                    else config.backends)]
    with make_progress(transient=True) as progress:
        task = progress.add_task("bench", total=len(plan) * len(config.batches), terms="")
        for model, spec in plan:
            name = parse_backend_spec(spec)[0]
            if name != "auto" and not BACKENDS.get(name).accepts(model):
                skipped.append(f"{model.name} {spec}: the {name} backend does not run this file type")
                progress.advance(task, len(config.batches))
                continue
            try:
                backend = open_backend(model, spec, threads=config.threads)
            except (DeviceError, MissingExtraError) as e:  # a GPU path this machine lacks: report, keep going
                skipped.append(f"{model.name} {spec}: {e}")
                progress.advance(task, len(config.batches))
                continue
            with backend:
                if "precision_auto" in backend.card.extra:
                    choices[model.name] = backend.card.extra["precision_auto"]
                for batch in config.batches:
                    progress.update(task, terms=f"{backend.name} batch {batch}")
                    x = random_frames(backend.card, batch, config.height, config.width, config.seed)
                    meter = time_backend(backend, x, config.warmup, config.iters)
                    pct = meter.percentiles_ms((50, 90, 99))
                    rows.append(BenchRow(model=model.name, backend=spec if spec != "auto" else backend.name,
                                         providers=", ".join(backend.providers), precision=backend.precision,
                                         batch=batch, threads=backend.threads, median_ms=pct["p50"],
                                         p90_ms=pct["p90"], p99_ms=pct["p99"], mean_ms=meter.mean_ms,
                                         frames_per_s=1000.0 * batch / meter.mean_ms))
                    progress.advance(task)
                if config.loop_frames:
                    progress.update(task, terms=f"{backend.name} live loop")
                    overheads.append(loop_overhead(backend, config.loop_frames, config.height, config.width,
                                                   config.warmup))
    return BenchReport(rows, overheads, skipped, choices)
