"""Reduced precision, put into the ONNX graph itself (TensorRT 11 takes precision only from the graph).

- fp16: onnxruntime's float16 converter turns the encoders and classifiers to float16; the preprocessing (depth
  units → metres → [0, 1], resize, normalisation), the softmax / ζ-mixing and the graph inputs and outputs stay
  float32, with Cast nodes at the borders.
- int8: onnxruntime's static quantization in QDQ format, per-channel symmetric int8 weights, MinMax ranges
  calibrated on real target frames fed at their own resolution (the graph resizes them). The preprocessing and
  the softmax / ζ-mixing always stay float32. Two activation forms:

  - ``int8`` (the default; TensorRT's form): symmetric int8 activations (zero point 0, what TensorRT's explicit
    quantization requires) on the inputs of Conv / Gemm / MatMul only. TensorRT fuses each Conv with its ReLU
    and the Q that follows. onnxruntime's CPU provider cannot: its QDQ fusion needs DQ → Conv → Q, and a ReLU
    before a symmetric Q is no no-op (it is removed only when the Q's zero point is the type's minimum), so every
    Conv followed by ReLU stays a float Conv with DequantizeLinear on its weights at every run — slower than
    fp32 (saved optimized graph and per-node profile: ``benchmarks/export_latency.py``).
  - ``uint8`` (onnxruntime on CPUs): asymmetric uint8 activations and every op of the network body quantized
    (Conv, Add, Mul, …; the float regions above and the linear head excluded by name: ``Int8Builder``), so the
    ReLUs fold into the Qs and the optimizer fuses each DQ → Conv → Q into a QLinearConv (u8×s8 kernels; residual
    Adds become QLinearAdd).
    Weights use ``reduce_range`` (7-bit): x86 CPUs with AVX2 or AVX-512 but no VNNI multiply u8×s8 with
    VPMADDUBSW, whose 16-bit pair sums saturate with full-range weights (onnxruntime's quantization docs; on one
    NTU frame it brought the probabilities 2.5–19× closer to fp32 for resnet18 / Lite0 / MobileNetV3). On VNNI
    (VPDPBUSD) and ARM dot-product CPUs nothing saturates and the 7-bit weights cost little with per-channel
    scales. TensorRT does not take this form.

``socketedge export --precision auto`` (export/auto.py) measures these forms against fp32 and fp16 on the
deployment machine and keeps the fastest one that agrees with fp32.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx

from socketedge.export.frames import as_batch
from socketedge.export.metadata import INPUT_NAME, OUTPUT_PROBS

COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
HEAD_OPS = {"Gemm", "MatMul"}
INT8_OPS = ["Conv", "Gemm", "MatMul"]


def _name_nodes(model: onnx.ModelProto) -> None:
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"


def float32_regions(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that stay float32 in an fp16 graph: everything upstream of the first compute layers
    (the preprocessing) and everything from the softmaxes on (probabilities, ζ-mixing, argmax)."""
    _name_nodes(model)
    nodes = list(model.graph.node)
    producer = {out: n for n in nodes for out in n.output}
    consumers: dict[str, list] = {}
    for n in nodes:
        for x in n.input:
            consumers.setdefault(x, []).append(n)

    def walk(starts, step) -> set[str]:
        seen: set[str] = set()
        stack = list(starts)
        while stack:
            n = stack.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            stack.extend(step(n))
        return seen

    def parents(n):
        return [producer[x] for x in n.input if x in producer]

    def children(n):
        return [c for out in n.output for c in consumers.get(out, [])]

    compute = [n for n in nodes if n.op_type in COMPUTE_OPS]
    below_compute = walk([c for n in compute for c in children(n)], children)
    upstream = walk([p for n in compute for p in parents(n)], parents) - below_compute
    head = walk([n for n in nodes if n.op_type == "Softmax"], children)
    return sorted((upstream | head) - {n.name for n in compute})


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    keep = float32_regions(model)
    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=keep, disable_shape_infer=False)
    topological_sort(converted.graph)  # the converter appends its Cast nodes at the end
    cancel_round_trip_casts(converted)
    return converted


def cancel_round_trip_casts(model: onnx.ModelProto) -> int:
    """Remove float32 → float16 → float32 Cast pairs between two float32 nodes (the converter puts one on every
    edge inside a blocked region, which would round the raw depth values to float16). Returns pairs removed."""
    F32, F16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    inferred = onnx.shape_inference.infer_shapes(model)
    dtype = {v.name: v.type.tensor_type.elem_type
             for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
    graph = model.graph
    consumers: dict[str, list] = {}
    for n in graph.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    outputs = {o.name for o in graph.output}

    def cast_to(n) -> int | None:
        return next((a.i for a in n.attribute if a.name == "to"), None) if n.op_type == "Cast" else None

    drop, rename = set(), {}
    for a in graph.node:
        if cast_to(a) != F16 or dtype.get(a.input[0]) != F32 or a.output[0] in outputs:
            continue
        users = consumers.get(a.output[0], [])
        if not users or any(cast_to(b) != F32 or b.output[0] in outputs for b in users):
            continue
        drop.add(id(a))
        for b in users:
            drop.add(id(b))
            rename[b.output[0]] = a.input[0]
    kept = [n for n in graph.node if id(n) not in drop]
    for n in kept:
        for i, x in enumerate(n.input):
            while x in rename:
                x = rename[x]
            n.input[i] = x
    del graph.node[:]
    graph.node.extend(kept)
    return len(rename)


def topological_sort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node comes after the producers of its inputs (stable otherwise)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for node in pending:
            if all(x in available for x in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a dangling input at node {rest[0].name!r}")
        pending = rest
    copies = [onnx.NodeProto.FromString(n.SerializeToString()) for n in ordered]
    del graph.node[:]
    graph.node.extend(copies)


class FrameReader:
    """onnxruntime CalibrationDataReader over raw frames (each (H, W) uint16/uint8, or (H, W, 3) colour), one frame
    per batch so frames of different sizes can be mixed; the graph resizes them like it will in deployment."""

    def __init__(self, frames: Iterable[np.ndarray]):
        self._frames = list(frames)
        self._it = iter(self._frames)

    def get_next(self) -> dict[str, np.ndarray] | None:
        frame = next(self._it, None)
        return None if frame is None else {INPUT_NAME: as_batch([frame])}

    def rewind(self) -> None:
        self._it = iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)


def stem_nodes(model: onnx.ModelProto, float_region: set[str] | None = None) -> list[str]:
    """The compute nodes whose data input is the preprocessed frame (the output of the float32 preprocessing, or a
    graph input): each source's first convolution. Keeping them float32 keeps the depth at full precision into the
    first layer, where 8-bit per-tensor input steps are ~2 cm over the default 0.3–5 m range."""
    region = set(float32_regions(model)) if float_region is None else float_region
    producer = {out: n.name for n in model.graph.node for out in n.output}
    inputs = {i.name for i in model.graph.input}
    return [n.name for n in model.graph.node if n.op_type in COMPUTE_OPS and n.name not in region and n.input
            and (n.input[0] in inputs or producer.get(n.input[0]) in region)]


#: CPU features (runtime.ort_profile.cpu_features) whose u8×s8 dot products do not saturate: x86 VNNI / AMX and
#: ARM's dot-product instructions. Without them (AVX2 / AVX-512 without VNNI) 16-bit pair sums saturate on
#: full-range weights, which is why the uint8 form defaults to 7-bit weights.
DOT_PRODUCT_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def float_layers(float_stem: bool = False, float_head: bool = True) -> list[str]:
    """The layer groups an int8 graph keeps float32, as cards record them (``int8_float_layers``)."""
    return [*(["stem"] if float_stem else []), *(["head"] if float_head else [])]


def reduce_range_for(cpu: dict) -> bool:
    """Whether the uint8 form's weights should stay 7-bit on ``cpu`` (``cpu_features()``): yes unless it has a
    non-saturating dot product. For a graph that runs where it is built (``--precision auto``); an export made
    elsewhere keeps the portable 7-bit default."""
    return not any(f in DOT_PRODUCT_FEATURES for f in cpu.get("int8_features", ()))


INT8_ACTIVATIONS = ("int8", "uint8")
CALIBRATIONS = ("minmax", "percentile", "entropy")
#: the entropy (KL) calibrator's histogram: onnxruntime's quantize_static builds it with 128 bins, as many as the
#: 128 quantized bins it compares against, which leaves the KL search one candidate — the full range, i.e. MinMax
ENTROPY_BINS, ENTROPY_QUANTIZED_BINS = 2048, 128


class Int8Builder:
    """Static QDQ quantization of a float32 graph calibrated on ``frames``, reusable for several variants of one
    graph: the graph is prepared (shape inference + optimisation) and calibrated once (onnxruntime's
    calibration cache), then ``build`` quantizes it with any set of extra nodes kept float32 — what mixed
    precision and the per-layer sensitivity need. Weights: per-channel symmetric int8. ``activations`` "int8"
    (symmetric, Conv / Gemm / MatMul inputs: TensorRT's explicit quantization) or "uint8" (asymmetric, the whole
    network body, 7-bit weights: onnxruntime's QLinearConv kernels on CPUs). The preprocessing and the softmax /
    ζ-mixing stay float32 in both (module docstring). ``reduce_range`` overrides the form's weight range (7-bit
    for uint8, 8-bit for int8); ``calibration``: onnxruntime's MinMax, Percentile (99.999)
    or Entropy (KL over an ENTROPY_BINS histogram) ranges.

    ``float_head`` (default) keeps the linear layers after the pooling float32 (``head_nodes``): a negligible share
    of the work, and the 8-bit rounding of the pooled features they read was the single most damaging activation
    quantization on the NTU depth classifiers (README, "Precision on CPUs"). ``float_stem`` keeps each source's
    first convolution float32 too (``stem_nodes``): the depth enters it at full precision instead of in ~2 cm
    8-bit steps, at a real cost in speed (the stem is one of the larger convolutions)."""

    def __init__(self, model: onnx.ModelProto, frames: list[np.ndarray], activations: str = "int8",
                 reduce_range: bool | None = None, calibration: str = "minmax", float_head: bool = True,
                 float_stem: bool = False):
        if activations not in INT8_ACTIVATIONS:
            raise ValueError(f"activations must be one of {INT8_ACTIVATIONS}, got {activations!r}")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
        from onnxruntime.quantization.shape_inference import quant_pre_process

        self.frames, self.activations, self.calibration = list(frames), activations, calibration
        self.symmetric = activations == "int8"
        self.reduce_range = not self.symmetric if reduce_range is None else reduce_range
        self._tmp = tempfile.TemporaryDirectory(prefix="socketedge-int8-")
        tmp = Path(self._tmp.name)
        src, self._pre, self._cache = tmp / "fp32.onnx", tmp / "pre.onnx", tmp / "calibration.json"
        onnx.save_model(model, str(src))
        try:  # shape inference + graph optimisation recommended before quantization
            quant_pre_process(str(src), str(self._pre), skip_symbolic_shape=True)
        except Exception:  # a graph the pre-processor cannot handle is still quantizable as is
            self._pre = src
        prepared = onnx.load_model(str(self._pre))
        self.keep_float = float32_regions(prepared)  # names every node; computed on the graph being quantized
        onnx.save_model(prepared, str(self._pre))
        kept = set(self.keep_float)
        #: each source's stem: the convolutions that read the preprocessed frame directly
        self.stem_nodes = stem_nodes(prepared, kept)
        #: the linear layers (Gemm / MatMul: the heads after the pooling), a negligible share of the work
        self.head_nodes = [n.name for n in prepared.graph.node if n.op_type in HEAD_OPS and n.name not in kept]
        self.keep_float += [*(self.stem_nodes if float_stem else []), *(self.head_nodes if float_head else [])]
        kept = set(self.keep_float)
        #: the convolutions / matrix products that get quantized, in graph order (mixed precision picks from these)
        self.compute_nodes = [n.name for n in prepared.graph.node if n.op_type in COMPUTE_OPS and n.name not in kept]
        self._all_nodes = [n.name for n in prepared.graph.node]

    def build(self, keep_float: Iterable[str] = (), only: str | None = None) -> onnx.ModelProto:
        """The quantized graph with the nodes ``keep_float`` also left float32, or (``only``) with just that one
        node quantized (the per-layer sensitivity). A kept node between two quantized ones runs float only in a
        session opened with ``metadata.ORT_DISABLED_OPTIMIZERS`` (every socketedge session is)."""
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)

        class Reader(FrameReader, CalibrationDataReader):
            pass

        exclude = [*self.keep_float, *keep_float]
        if only is not None:
            exclude = [n for n in self._all_nodes if n != only]
        ops = self._op_types()
        if self.calibration == "entropy" and not self._cache.is_file():
            self._entropy_ranges(Reader(self.frames), ops)
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[self.calibration]
        out = Path(self._tmp.name) / "int8.onnx"
        quantize_static(
            str(self._pre), str(out), Reader(self.frames), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=ops, nodes_to_exclude=exclude,
            per_channel=True, reduce_range=self.reduce_range, weight_type=QuantType.QInt8,
            calibrate_method=method, calibration_cache_path=str(self._cache),
            activation_type=QuantType.QInt8 if self.symmetric else QuantType.QUInt8,
            extra_options={"ActivationSymmetric": self.symmetric, "WeightSymmetric": True,
                           "CalibPercentile": 99.999})
        return onnx.load_model(str(out))

    def _op_types(self) -> list[str]:
        """The op types quantized and calibrated: Conv / Gemm / MatMul inputs in the symmetric form, every op
        onnxruntime can quantize in the uint8 form (what quantize_static takes when given none)."""
        from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

        return list(INT8_OPS) if self.symmetric else sorted(set(QLinearOpsRegistry) | set(QDQRegistry))

    def _entropy_ranges(self, reader, ops: list[str]) -> None:
        """Entropy (KL) ranges of ``ops``' tensors with a histogram of ENTROPY_BINS, written to the calibration
        cache that quantize_static then reads instead of calibrating itself (it cannot be given the bin count)."""
        from onnxruntime.quantization import CalibrationMethod
        from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

        calibrator = create_calibrator(
            Path(self._pre), ops, augmented_model_path=str(Path(self._tmp.name) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.Entropy,
            extra_options={"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS})
        calibrator.collect_data(reader)
        save_tensors_data(calibrator.compute_data(), self._cache)

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> Int8Builder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def to_int8(model: onnx.ModelProto, frames: list[np.ndarray], activations: str = "int8",
            reduce_range: bool | None = None, calibration: str = "minmax",
            keep_float: Iterable[str] = (), float_head: bool = True, float_stem: bool = False) -> onnx.ModelProto:
    """Static QDQ quantization of a float32 graph calibrated on ``frames`` (``Int8Builder``), with the nodes
    ``keep_float`` also left float32."""
    with Int8Builder(model, frames, activations, reduce_range, calibration, float_head, float_stem) as builder:
        return builder.build(keep_float)


def run_probs(model: onnx.ModelProto, frames: list[np.ndarray], threads: int = 1) -> np.ndarray:
    """(N, C) probabilities of ``frames`` (batch 1 each) through onnxruntime's CPU provider."""
    from socketedge.export.parity import session_for

    session = session_for(model.SerializeToString(), threads, inter_op_num_threads=1)
    return np.concatenate([session.run([OUTPUT_PROBS], {INPUT_NAME: as_batch([f])})[0] for f in frames])


CONFIDENT = 0.5  # reference top probability from which a frame counts as confident (recorded agreement subset)


def prob_errors(probs: np.ndarray, reference: np.ndarray) -> dict[str, float | None]:
    """Top-1 agreement and probability errors of ``probs`` against ``reference`` (both (N, C)): largest |Δp|,
    mean total-variation distance (½ Σ_k |Δp_k| per frame, averaged) and the agreement where the reference is
    confident. The one definition `--precision auto` and the mixed-precision search judge candidates by."""
    confident = reference.max(1) >= CONFIDENT
    same = probs.argmax(1) == reference.argmax(1)
    return {"agreement": float(same.mean()), "max_abs": float(np.abs(probs - reference).max()),
            "mean_tv": float(0.5 * np.abs(probs - reference).sum(1).mean()),
            "confident_agreement": float(same[confident].mean()) if confident.any() else None}


def near_ties(reference: np.ndarray, margin: float) -> int:
    """How many frames of ``reference`` (N, C probabilities) have their top two classes closer than ``margin``:
    frames whose top-1 a graph ``margin`` away from fp32 in probability can flip. Where they exceed the flips
    ``--min-agreement`` allows, even a graph within that probability bound can fail the agreement bound (README,
    int8)."""
    if reference.shape[1] < 2:
        return 0
    top2 = np.sort(reference, axis=1)[:, -2:]
    return int((top2[:, 1] - top2[:, 0] < margin).sum())


def within_tolerance(agreement: float, mean_tv: float, min_agreement: float, max_prob_error: float) -> bool:
    """Whether a reduced-precision graph is close enough to fp32: both bounds hold."""
    return agreement >= min_agreement and mean_tv <= max_prob_error


def log_prob_error(probs: np.ndarray, reference: np.ndarray) -> float:
    """Mean squared difference of the centred log-probabilities (the logits up to a per-frame constant): a
    layer's damage even where the probabilities are saturated."""
    def centred(p):
        lp = np.log(np.maximum(p.astype(np.float64), 1e-30))
        return lp - lp.mean(1, keepdims=True)

    return float(((centred(probs) - centred(reference)) ** 2).mean())


def layer_sensitivity(builder: Int8Builder, frames: list[np.ndarray], reference: np.ndarray, threads: int = 1,
                      progress=None) -> list[tuple[str, float]]:
    """Each compute node quantized alone (everything else float32), run by onnxruntime's real kernels on
    ``frames``: its ``log_prob_error`` against ``reference`` (the fp32 probabilities), most sensitive first."""
    task = progress.add_task("int8 sensitivity", total=len(builder.compute_nodes), terms="") if progress else None
    out = []
    for name in builder.compute_nodes:
        out.append((name, log_prob_error(run_probs(builder.build(only=name), frames, threads), reference)))
        if task is not None:
            progress.advance(task)
    if task is not None:
        progress.remove_task(task)
    return sorted(out, key=lambda kv: -kv[1])


def mixed_int8(builder: Int8Builder, frames: list[np.ndarray], reference: np.ndarray, *, min_agreement: float,
               max_prob_error: float, threads: int = 1, max_float: float = 0.5, sensitivity_frames: int = 16,
               ranking: list[tuple[str, float]] | None = None, progress=None
               ) -> tuple[onnx.ModelProto | None, dict]:
    """Mixed precision: the most sensitive compute nodes (``layer_sensitivity``) kept float32, 1, 2, 4, … of
    them, until the graph agrees with ``reference`` on ``frames`` (top-1 agreement ≥ ``min_agreement`` and mean
    total-variation distance ≤ ``max_prob_error``); at most ``max_float`` of the compute nodes (more would leave
    little int8 to gain from). The ranking uses the first ``sensitivity_frames`` frames (or is given); every step
    is checked on all of them. Returns the graph (None when no such mix reaches the bound) and a record of the
    ranking and the steps tried."""
    if ranking is None:
        ranking = layer_sensitivity(builder, frames[:sensitivity_frames], reference[:sensitivity_frames], threads,
                                    progress)
    limit = max(1, int(max_float * len(ranking)))
    steps, k = [], 1
    record = {"ranking": [[n, e] for n, e in ranking], "steps": steps, "compute_nodes": len(ranking)}
    while k <= limit:
        keep = [n for n, _ in ranking[:k]]
        graph = builder.build(keep)
        errors = prob_errors(run_probs(graph, frames, threads), reference)
        steps.append({"float_nodes": k, "agreement": errors["agreement"], "mean_tv": errors["mean_tv"]})
        if within_tolerance(errors["agreement"], errors["mean_tv"], min_agreement, max_prob_error):
            record["float_nodes"] = keep
            return graph, record
        k = min(2 * k, limit) if k < limit else limit + 1
    return None, record
