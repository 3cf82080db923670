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
    (Conv, Add, pooling, Gemm, …; the float regions above excluded by name), so the ReLUs fold into the Qs and the
    optimizer fuses each DQ → Conv → Q into a QLinearConv (u8×s8 kernels; residual Adds become QLinearAdd).
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
from socketedge.export.metadata import INPUT_NAME

COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
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


INT8_ACTIVATIONS = ("int8", "uint8")


def to_int8(model: onnx.ModelProto, frames: list[np.ndarray], activations: str = "int8",
            reduce_range: bool | None = None) -> onnx.ModelProto:
    """Static QDQ quantization of a float32 graph calibrated on ``frames``: per-channel symmetric int8 weights;
    ``activations`` "int8" (symmetric, Conv / Gemm / MatMul inputs: TensorRT's explicit quantization) or
    "uint8" (asymmetric, the whole network body, 7-bit weights: onnxruntime's QLinearConv kernels on CPUs).
    The preprocessing and the softmax / ζ-mixing stay float32 in both (module docstring). ``reduce_range``
    overrides the form's weight range (7-bit for uint8, 8-bit for int8)."""
    if activations not in INT8_ACTIVATIONS:
        raise ValueError(f"activations must be one of {INT8_ACTIVATIONS}, got {activations!r}")
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(FrameReader, CalibrationDataReader):
        pass

    symmetric = activations == "int8"
    with tempfile.TemporaryDirectory(prefix="socketedge-int8-") as tmp:
        src, pre, out = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(model, str(src))
        try:  # shape inference + graph optimisation recommended before quantization
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # a graph the pre-processor cannot handle is still quantizable as is
            pre = src
        prepared = onnx.load_model(str(pre))
        keep_float = float32_regions(prepared)  # names every node; computed on the graph being quantized
        onnx.save_model(prepared, str(pre))
        quantize_static(
            str(pre), str(out), Reader(frames), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=INT8_OPS if symmetric else None, nodes_to_exclude=keep_float,
            per_channel=True, reduce_range=not symmetric if reduce_range is None else reduce_range,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True})
        return onnx.load_model(str(out))
