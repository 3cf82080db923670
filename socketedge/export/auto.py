"""`socketedge export --precision auto`: build every candidate graph, measure each on this machine with the
runtime backend it will be deployed with, check it against fp32, keep the fastest that agrees.

Candidates (most exact first): ``fp32``; ``fp16``; ``int8`` (symmetric activations, TensorRT's form);
``int8-uint8`` (asymmetric uint8 activations, onnxruntime's QLinearConv kernels; export/precision.py);
``int8-uint8-stem-float`` (the same with each source's first convolution float32: the depth enters the network at
full precision); ``int8-uint8-qat`` (the stem-float form of the model fine-tuned through int8 rounding to
reproduce fp32 on the calibration frames, ``qat.finetune``: ``FINETUNE_STEPS`` steps, minutes on a CPU; it trains
on three quarters of them and is checked only on the quarter it held aside, so its agreement is measured on fewer
frames but not on frames it learned); ``int8-uint8-mixed`` (the uint8 form with its most sensitive convolutions
kept float32, as few as reach the tolerance on the calibration frames: ``precision.mixed_int8``). Every int8
candidate keeps the linear head float32 (``Int8Builder``'s ``float_head``). The last two are built only when
neither plain uint8 candidate meets the tolerance. Each is written with its card to a temporary .onnx, opened
through ``runtime.backends.open_backend`` and

- checked: every calibration frame (the fine-tuned candidate: those it held aside) at batch 1 (the live loop's
  batch) through the backend, against the fp32 PyTorch fused model: top-1 agreement, and the mean
  total-variation distance between the probability vectors (½ Σ_k |Δp_k| per frame, averaged: the probability
  mass the candidate moves; 0 identical, 1 disjoint);
- timed: ``runtime.bench.time_interleaved`` on one calibration frame, all candidates round-robin in one run.

The choice (``choose``): a candidate qualifies when its top-1 agreement reaches ``min_agreement`` AND its mean
total-variation distance stays within ``max_prob_error`` (fp32, the reference, always qualifies); among those, the
fastest by median; a more exact candidate within ``MARGIN`` of that median wins instead, since
a few percent is within the noise of a shared machine and not worth precision. The card's
``extra["precision_auto"]`` records every measurement, the choice and why.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from socketedge.export.precision import float_layers, near_ties, prob_errors, within_tolerance

MARGIN = 0.05  # a less exact candidate must be more than 5% faster (by median) to be preferred
MAX_PROB_ERROR = 0.02  # default bound on the mean total-variation distance to fp32's probabilities


@dataclass(frozen=True)
class Candidate:
    name: str
    precision: str  # fp32 | fp16 | int8
    int8_activations: str | None = None  # int8 | uint8 for int8 graphs
    mixed: bool = False  # the most sensitive layers kept float32 (precision.mixed_int8)
    finetune: bool = False  # quantization-aware fine-tuning on the calibration frames first (export/qat.py)
    float_stem: bool = False  # each source's first convolution kept float32 (precision.Int8Builder)

    @property
    def float_layers(self) -> list[str]:
        """The layers an int8 candidate keeps float32 (the card's ``int8_float_layers``)."""
        return float_layers(self.float_stem)


#: --precision auto's fine-tuning steps for the int8-uint8-qat candidate
FINETUNE_STEPS = 200

CANDIDATES = (Candidate("fp32", "fp32"), Candidate("fp16", "fp16"), Candidate("int8", "int8", "int8"),
              Candidate("int8-uint8", "int8", "uint8"),
              Candidate("int8-uint8-stem-float", "int8", "uint8", float_stem=True),
              Candidate("int8-uint8-qat", "int8", "uint8", finetune=True, float_stem=True),
              Candidate("int8-uint8-mixed", "int8", "uint8", mixed=True))
#: the candidates whose meeting the tolerance makes the slow ones (fine-tuning, mixed precision) unnecessary
PLAIN_UINT8 = ("int8-uint8", "int8-uint8-stem-float")


@dataclass
class Measured:
    name: str
    precision: str
    int8_activations: str | None
    median_ms: float | None = None
    p90_ms: float | None = None
    agreement: float | None = None  # top-1 agreement with fp32 PyTorch on the calibration frames (batch 1)
    max_abs: float | None = None  # largest |Δp| over frames and classes
    mean_tv: float | None = None  # mean over frames of ½ Σ_k |Δp_k| (total-variation distance)
    confident_agreement: float | None = None  # top-1 agreement where fp32's top p ≥ precision.CONFIDENT
    check_frames: int | None = None  # calibration frames the check used (fine-tuned: only those it held aside)
    kernels: str | None = None  # onnxruntime CPU kernel census of the optimized graph (int8 candidates)
    error: str | None = None  # why it could not be built / opened / run
    skipped: str | None = None  # why it was not built (not needed, or no mix reaches the tolerance)
    float_nodes: list[str] | None = None  # mixed precision: the compute nodes kept float32
    finetune: dict | None = None  # fine-tuned candidate: qat.finetune's record (its held-aside frames' numbers)
    verdict: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def choose(measured: list[Measured], min_agreement: float, max_prob_error: float = MAX_PROB_ERROR,
           margin: float = MARGIN) -> tuple[Measured, str]:
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
        elif m.skipped is not None:
            m.verdict = m.skipped
        elif m.median_ms is None:
            m.verdict = "not timed"
        elif m is not ref and (m.agreement is None or m.agreement < min_agreement):
            m.verdict = f"rejected: top-1 agreement {100 * (m.agreement or 0):.2f}% < {100 * min_agreement:.2f}%"
        elif m is not ref and (m.mean_tv is None or m.mean_tv > max_prob_error):
            m.verdict = (f"rejected: mean probability error (TV) {m.mean_tv if m.mean_tv is not None else float('nan'):.4f}"
                         f" > {max_prob_error:.4f}")
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
                  f"median) with {100 * chosen.agreement:.2f}% top-1 agreement (≥ {100 * min_agreement:.2f}%) and "
                  f"mean probability error {chosen.mean_tv:.4f} (≤ {max_prob_error:.4f})")
    return chosen, reason


def tie_note(ties: int, frames: int, measured: list[Measured], min_agreement: float, max_prob_error: float) -> str:
    """A note for the reason when a candidate was rejected on top-1 agreement while more of the check frames are
    fp32 near-ties (``ties``: ``precision.near_ties`` at the probability bound) than the agreement bound lets
    flip: such a frame's top-1 can change within the probability bound, so the rejection may say more about the
    classifier's confidence than about the candidate."""
    if ties <= frames * (1 - min_agreement) or not any(m.verdict.startswith("rejected: top-1") for m in measured):
        return ""
    return (f"; note: {ties} of {frames} check frames are fp32 near-ties (top-2 probabilities closer than the "
            f"{max_prob_error:g} probability bound), more than --min-agreement {100 * min_agreement:g}% lets flip")


@dataclass
class AutoChoice:
    graph: object  # onnx.ModelProto of the chosen candidate
    candidate: Candidate
    record: dict  # what goes into card.extra["precision_auto"]


def _build(candidate: Candidate, fp32_graph, frames, reference=None, min_agreement=0.99,
           max_prob_error=MAX_PROB_ERROR, fused=None, progress=None, reduce_range=None):
    """The candidate's graph, and for a mixed one the record of its search (graph None when no mix qualifies),
    for a fine-tuned one the fine-tuning's record. ``reduce_range``: the uint8 forms' weight range (None: 7-bit)."""
    from socketedge.export import onnx_export, precision

    rr = reduce_range if candidate.int8_activations == "uint8" else None
    if candidate.finetune:
        from socketedge.export import qat

        tuned = qat.finetune(fused, frames, candidate.int8_activations, steps=FINETUNE_STEPS, reduce_range=rr,
                             float_stem=candidate.float_stem, progress=progress)
        graph = onnx_export.graph_of(tuned.model)
        return precision.to_int8(graph, frames, candidate.int8_activations, reduce_range=rr,
                                 float_stem=candidate.float_stem), tuned.record
    if candidate.precision == "fp32":
        return fp32_graph, None
    if candidate.precision == "fp16":  # a copy: the converter may edit the graph it is given
        return precision.to_fp16(type(fp32_graph).FromString(fp32_graph.SerializeToString())), None
    if not candidate.mixed:
        return precision.to_int8(fp32_graph, frames, candidate.int8_activations, reduce_range=rr,
                                 float_stem=candidate.float_stem), None
    with precision.Int8Builder(fp32_graph, frames, candidate.int8_activations, reduce_range=rr,
                               float_stem=candidate.float_stem) as builder:
        return precision.mixed_int8(builder, frames, reference, min_agreement=min_agreement,
                                    max_prob_error=max_prob_error)


def _batch1_reference(fused, frames: list[np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([fused(torch.from_numpy(f[None, None]))[0].numpy() for f in frames])


def select(fused, fp32_graph, frames: list[np.ndarray], card, *, min_agreement: float,
           max_prob_error: float = MAX_PROB_ERROR, backend: str,
           threads: int | None, warmup: int, iters: int, progress=None,
           candidates: tuple[Candidate, ...] = CANDIDATES) -> AutoChoice:
    """Build, check and time ``candidates``; return the chosen graph and the record for the card."""
    import onnx

    from socketedge.errors import DeviceError, MissingExtraError, ModelError
    from socketedge.export import onnx_export, precision
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
    cpu = cpu_features()
    # auto measures on the machine the graph will run on, so the uint8 forms get full 8-bit weights where its CPU
    # multiplies u8×s8 without saturating (precision.reduce_range_for): 7-bit weights cost accuracy for nothing there
    reduce_range = precision.reduce_range_for(cpu)
    weight_bits = 7 if reduce_range else 8
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
                plain = next((p for p in measured if p.name in PLAIN_UINT8 and p.agreement is not None and
                              within_tolerance(p.agreement, p.mean_tv, min_agreement, max_prob_error)), None)
                if (c.mixed or c.finetune) and plain is not None:
                    m.skipped = f"not built: {plain.name} already within the tolerance"
                    advance(2)
                    continue
                step(f"building {c.name}" + (" (per-layer sensitivity)" if c.mixed else "")
                     + (f" ({FINETUNE_STEPS} fine-tuning steps)" if c.finetune else ""))
                try:
                    graph, search = _build(c, fp32_graph, frames, reference, min_agreement, max_prob_error, fused,
                                           progress, reduce_range)
                    if c.mixed and graph is None:
                        m.skipped = (f"rejected: no mix with ≤ half of the {search['compute_nodes']} compute layers "
                                     "float32 reaches the tolerance on the calibration frames")
                        advance(2)
                        continue
                    if c.mixed:
                        m.float_nodes = search["float_nodes"]
                    elif c.finetune:
                        m.finetune = {k: v for k, v in search.items() if k != "history"}
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
                if c.int8_activations == "uint8":
                    candidate_card.extra["int8_weight_bits"] = weight_bits
                if c.precision == "int8":
                    candidate_card.extra["int8_float_layers"] = c.float_layers
                if m.float_nodes:
                    candidate_card.extra["int8_float_nodes"] = m.float_nodes
                if m.finetune:
                    candidate_card.extra["int8_finetune"] = m.finetune
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
                check = list(range(len(frames)))
                if m.finetune and m.finetune.get("held_aside"):  # judged only on frames it was not trained on
                    check = m.finetune["held_aside"]
                m.check_frames = len(check)
                for key, value in prob_errors(probs[check], reference[check]).items():
                    setattr(m, key, value)
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
    chosen, reason = choose(measured, min_agreement, max_prob_error)
    classes = len(set(reference.argmax(1).tolist()))
    if classes == 1:
        reason += (f"; note: fp32 predicts one class on all {len(frames)} check frames, so top-1 agreement is "
                   "uninformative here and the probability bound decides")
    ties = near_ties(reference, max_prob_error)
    reason += tie_note(ties, len(frames), measured, min_agreement, max_prob_error)
    record = {"chosen": chosen.name, "reason": reason, "min_agreement": min_agreement,
              "max_prob_error": max_prob_error, "reference_classes": classes, "reference_near_ties": ties,
              "margin": MARGIN, "backend": backend, "backend_detail": described, "threads": used_threads,
              "frame": list(timing_frame.shape[-2:]), "batch": 1, "warmup": warmup, "iters": iters,
              "agreement_frames": len(frames), "cpu": cpu, "uint8_weight_bits": weight_bits,
              "candidates": [m.to_dict() for m in measured]}
    candidate = next(c for c in candidates if c.name == chosen.name)
    return AutoChoice(graphs[chosen.name], candidate, record)
