"""Which kernels onnxruntime really runs for a graph, from its own tools: the graph as optimized by the session
(``SessionOptions.optimized_model_filepath``) and the per-node profile (``SessionOptions.enable_profiling``).

An int8 QDQ graph is only fast when the optimizer fuses DQ → Conv → Q into QLinearConv; a Conv left between
DequantizeLinear nodes runs in float32 with its weights dequantized at every run. ``kernel_census`` counts both;
``op_times_ms`` says where the time goes per op type.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from socketedge.export.metadata import INPUT_NAME

QUANTIZED_COMPUTE = ("QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger")
FLOAT_COMPUTE = ("Conv", "FusedConv", "NhwcFusedConv", "Gemm", "MatMul", "FusedMatMul", "FusedGemm")


@dataclass
class KernelCensus:
    quantized: int  # convolutions / matrix products running in int8 kernels
    float_fallback: int  # convolutions / matrix products running in float32
    quantize_nodes: int  # QuantizeLinear + DequantizeLinear left unfused in the optimized graph
    ops: dict[str, int] = field(default_factory=dict)  # every op type of the optimized graph

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.quantized} int8 / {self.float_fallback} float compute kernels, "
                f"{self.quantize_nodes} Q/DQ left")


def _session(model: bytes | str | Path, threads: int, **options):
    import onnxruntime as ort

    from socketedge.export.parity import session_for

    return session_for(model, threads, inter_op_num_threads=1,
                       graph_optimization_level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, **options)


def kernel_census(model: bytes | str | Path, threads: int = 1) -> KernelCensus:
    """Op types of the graph as onnxruntime's CPU provider optimizes it (what actually runs)."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="socketedge-opt-") as tmp:
        path = Path(tmp) / "optimized.onnx"
        _session(model, threads, optimized_model_filepath=str(path))
        optimized = onnx.load_model(str(path), load_external_data=False)
    ops = Counter(n.op_type for n in optimized.graph.node)
    return KernelCensus(quantized=sum(ops[o] for o in QUANTIZED_COMPUTE),
                        float_fallback=sum(ops[o] for o in FLOAT_COMPUTE),
                        quantize_nodes=ops["QuantizeLinear"] + ops["DequantizeLinear"],
                        ops=dict(ops.most_common()))


def op_times_ms(model: bytes | str | Path, frames: np.ndarray, threads: int = 1, runs: int = 10,
                warmup: int = 2) -> dict[str, float]:
    """Mean kernel milliseconds per run by op type (onnxruntime's per-node profile), largest first."""
    with tempfile.TemporaryDirectory(prefix="socketedge-prof-") as tmp:
        session = _session(model, threads, enable_profiling=True, profile_file_prefix=str(Path(tmp) / "p"))
        for _ in range(warmup + runs):
            session.run(None, {INPUT_NAME: frames})
        trace = session.end_profiling()
        with open(trace) as fh:
            events = json.load(fh)
        os.remove(trace)
    totals: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            totals[op] += e["dur"] / 1e3
    # the profile covers the warm-up runs too: average over every recorded run of each node
    node_runs = warmup + runs
    return dict(sorted(((op, t / node_runs) for op, t in totals.items()), key=lambda kv: -kv[1]))


def cpu_features() -> dict:
    """The CPU model and the instruction sets that decide onnxruntime's int8 kernels (Linux /proc/cpuinfo)."""
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model") and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
    return {"model": model, "machine": platform.machine(), "int8_features": [f for f in wanted if f in flags]}
