"""`socketedge export --precision auto`: build every candidate graph, measure each on this machine with the
runtime backend it will be deployed with, check it against fp32, keep the fastest that agrees.

Candidates (most exact first): ``fp32``; ``fp16``; ``int8`` (symmetric activations, TensorRT's form);
``int8-uint8`` (asymmetric uint8 activations, onnxruntime's QLinearConv kernels; export/precision.py). Each is
written with its card to a temporary .onnx, opened through ``runtime.backends.open_backend`` and

- checked: every calibration frame at batch 1 (the live loop's batch) through the backend, top-1 agreement and
  largest probability difference against the fp32 PyTorch fused model;
- timed: ``runtime.bench.time_interleaved`` on one calibration frame, all candidates round-robin in one run.

The choice (``choose``): among candidates whose agreement reaches ``min_agreement`` (fp32, the reference, always
qualifies), the fastest by median; a more exact candidate within ``MARGIN`` of that median wins instead, since
a few percent is within the noise of a shared machine and not worth precision. The card's
``extra["precision_auto"]`` records every measurement, the choice and why.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MARGIN = 0.05  # a less exact candidate must be more than 5% faster (by median) to be preferred


@dataclass(frozen=True)
class Candidate:
    name: str
    precision: str  # fp32 | fp16 | int8
    int8_activations: str | None = None  # int8 | uint8 for int8 graphs


CANDIDATES = (Candidate("fp32", "fp32"), Candidate("fp16", "fp16"), Candidate("int8", "int8", "int8"),
              Candidate("int8-uint8", "int8", "uint8"))


@dataclass
class Measured:
    name: str
    precision: str
    int8_activations: str | None
    median_ms: float | None = None
    p90_ms: float | None = None
    agreement: float | None = None  # top-1 agreement with fp32 PyTorch on the calibration frames (batch 1)
    max_abs: float | None = None
    kernels: str | None = None  # onnxruntime CPU kernel census of the optimized graph (int8 candidates)
    error: str | None = None  # why it could not be built / opened / run
    verdict: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def choose(measured: list[Measured], min_agreement: float, margin: float = MARGIN) -> tuple[Measured, str]:
    """The candidate to keep and a one-sentence reason; sets each candidate's ``verdict``."""
    order = [c.name for c in CANDIDATES]
    rank = {name: (order.index(name) if name in order else len(order)) for name in (m.name for m in measured)}
    ref = next((m for m in measured if m.name == "fp32"), None)
    if ref is None or ref.median_ms is None:
        raise ValueError("the fp32 candidate must be measured: it is the reference and the fallback")
    eligible = []
    for m in measured:
        if m.error is not None:
            m.verdict = f"failed: {m.error}"
        elif m.median_ms is None:
            m.verdict = "not timed"
        elif m is not ref and (m.agreement is None or m.agreement < min_agreement):
            m.verdict = f"rejected: top-1 agreement {100 * (m.agreement or 0):.2f}% < {100 * min_agreement:.2f}%"
        else:
            eligible.append(m)
    fastest = min(eligible, key=lambda m: m.median_ms)
    chosen = min((m for m in eligible if m.median_ms <= fastest.median_ms * (1 + margin)),
                 key=lambda m: rank[m.name])
    for m in eligible:
        if m is not chosen:
            gain = chosen.median_ms / m.median_ms
            m.verdict = (f"slower ({m.median_ms / chosen.median_ms:.2f}× {chosen.name})" if gain <= 1 else
                         f"within {100 * margin:.0f}% of the fastest: the more exact {chosen.name} is kept")
    speed = ref.median_ms / chosen.median_ms
    if chosen is ref:
        faster = [m for m in eligible if m is not ref and m.median_ms < ref.median_ms]
        why = ("no reduced precision that agrees with fp32 is more than "
               f"{100 * margin:.0f}% faster" if not faster else
               f"{faster[0].name} is only {ref.median_ms / faster[0].median_ms:.2f}× faster (< {1 + margin:.2f}×)")
        reason = f"fp32 kept: {why} on this machine"
    else:
        reason = (f"{chosen.name}: {speed:.2f}× faster than fp32 ({chosen.median_ms:.2f} vs {ref.median_ms:.2f} ms "
                  f"median) with {100 * chosen.agreement:.2f}% top-1 agreement (≥ {100 * min_agreement:.2f}%)")
    return chosen, reason


@dataclass
class AutoChoice:
    graph: object  # onnx.ModelProto of the chosen candidate
    candidate: Candidate
    record: dict  # what goes into card.extra["precision_auto"]


def _build(candidate: Candidate, fp32_graph, frames):
    from socketedge.export import precision

    if candidate.precision == "fp32":
        return fp32_graph
    if candidate.precision == "fp16":  # a copy: the converter may edit the graph it is given
        return precision.to_fp16(type(fp32_graph).FromString(fp32_graph.SerializeToString()))
    return precision.to_int8(fp32_graph, frames, candidate.int8_activations)


def _batch1_reference(fused, frames: list[np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([fused(torch.from_numpy(f[None, None]))[0].numpy() for f in frames])


def select(fused, fp32_graph, frames: list[np.ndarray], card, *, min_agreement: float, backend: str,
           threads: int | None, warmup: int, iters: int, progress=None,
           candidates: tuple[Candidate, ...] = CANDIDATES) -> AutoChoice:
    """Build, check and time ``candidates``; return the chosen graph and the record for the card."""
    import onnx

    from socketedge.errors import DeviceError, MissingExtraError, ModelError
    from socketedge.export import onnx_export
    from socketedge.export.frames import batches_of
    from socketedge.runtime.backends import open_backend
    from socketedge.runtime.bench import time_interleaved
    from socketedge.runtime.ort_profile import cpu_features, kernel_census

    task = None
    if progress is not None:
        task = progress.add_task("auto", total=2 * len(candidates) + 1, terms="")

    def step(what: str) -> None:
        if progress is not None:
            progress.update(task, description=f"auto: {what}")

    def advance(n: int = 1) -> None:
        if progress is not None:
            progress.advance(task, n)

    reference = _batch1_reference(fused, frames)
    x = batches_of(frames, 1)
    timing_frame = batches_of(frames, 2)[0][:1]  # batch 1 at the most common frame size
    measured: list[Measured] = []
    graphs: dict[str, onnx.ModelProto] = {}
    opened = {}
    with tempfile.TemporaryDirectory(prefix="socketedge-auto-") as tmp:
        try:
            for c in candidates:
                m = Measured(c.name, c.precision, c.int8_activations)
                measured.append(m)
                step(f"building {c.name}")
                try:
                    graph = _build(c, fp32_graph, frames)
                    onnx_export.check(graph)
                except Exception as e:  # a converter / quantizer failure drops this candidate, not the export
                    m.error = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                    advance(2)
                    continue
                graphs[c.name] = graph
                advance()
                step(f"checking {c.name}")
                path = Path(tmp) / f"{c.name}.onnx"
                candidate_card = card.model_copy(deep=True)
                candidate_card.precision = c.precision
                if c.int8_activations:
                    candidate_card.extra["int8_activations"] = c.int8_activations
                onnx_export.set_metadata(graph, candidate_card)
                onnx_export.save(graph, path)
                if c.precision == "int8":
                    m.kernels = kernel_census(path, threads or 1).summary()
                try:
                    b = open_backend(path, backend, threads=threads)
                except (DeviceError, MissingExtraError, ModelError) as e:
                    m.error = str(e)
                    advance()
                    continue
                opened[c.name] = b
                probs = np.concatenate([b.infer(f)[0] for f in x])
                m.agreement = float((probs.argmax(1) == reference.argmax(1)).mean())
                m.max_abs = float(np.abs(probs - reference).max())
                advance()
            step(f"timing {len(opened)} candidates side by side")
            meters = time_interleaved(opened, timing_frame, warmup, iters)
            for m in measured:
                if m.name in meters:
                    pct = meters[m.name].percentiles_ms((50, 90))
                    m.median_ms, m.p90_ms = pct["p50"], pct["p90"]
            advance()
            described = next(iter(opened.values())).describe() if opened else backend
            used_threads = next(iter(opened.values())).threads if opened else threads
        finally:
            for b in opened.values():
                b.close()
    chosen, reason = choose(measured, min_agreement)
    record = {"chosen": chosen.name, "reason": reason, "min_agreement": min_agreement, "margin": MARGIN,
              "backend": backend, "backend_detail": described, "threads": used_threads,
              "frame": list(timing_frame.shape[-2:]), "batch": 1, "warmup": warmup, "iters": iters,
              "agreement_frames": len(frames), "cpu": cpu_features(),
              "candidates": [m.to_dict() for m in measured]}
    candidate = next(c for c in candidates if c.name == chosen.name)
    return AutoChoice(graphs[chosen.name], candidate, record)
