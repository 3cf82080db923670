"""Reduced precision, put into the ONNX graph itself (TensorRT 11 takes precision only from the graph).

- fp16: onnxruntime's float16 converter turns the encoders and classifiers to float16; the preprocessing (depth
  units → metres → [0, 1], resize, normalisation), the softmax / ζ-mixing and the graph inputs and outputs stay
  float32, with Cast nodes at the borders.
- int8: onnxruntime's static quantization in QDQ format — per-channel symmetric int8 weights, symmetric int8
  activations (zero point 0, what TensorRT's explicit quantization requires), MinMax ranges calibrated on real
  target frames fed at their own resolution (the graph resizes them). Only Conv / Gemm / MatMul are quantized;
  the preprocessing and the mixing stay float32. For onnxruntime on an x86 CPU, asymmetric uint8 activations
  run faster (its fast kernels are u8×s8; benchmarks/export_latency.py), but TensorRT does not take them.
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


def to_int8(model: onnx.ModelProto, frames: list[np.ndarray], activations: str = "int8") -> onnx.ModelProto:
    """Static QDQ quantization of a float32 graph calibrated on ``frames``: int8 per-channel symmetric weights;
    activations symmetric int8 (TensorRT's explicit quantization needs it) or, for onnxruntime on x86 CPUs
    (whose fast int8 kernels are u8×s8), asymmetric uint8."""
    if activations not in INT8_ACTIVATIONS:
        raise ValueError(f"activations must be one of {INT8_ACTIVATIONS}, got {activations!r}")
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(FrameReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="socketedge-int8-") as tmp:
        src, pre, out = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(model, str(src))
        try:  # shape inference + graph optimisation recommended before quantization
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # a graph the pre-processor cannot handle is still quantizable as is
            pre = src
        quantize_static(
            str(pre), str(out), Reader(frames), quant_format=QuantFormat.QDQ, op_types_to_quantize=INT8_OPS,
            per_channel=True, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
            activation_type=QuantType.QInt8 if activations == "int8" else QuantType.QUInt8,
            extra_options={"ActivationSymmetric": activations == "int8", "WeightSymmetric": True})
        return onnx.load_model(str(out))
