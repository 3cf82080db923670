"""CPU latency of the fused ONNX graph vs N separate onnxruntime sessions vs the PyTorch eager ensemble, measured
side by side in one run (batch 1, a raw depth frame in, probabilities out; median of --runs after warm-up).

- fused:    one onnxruntime session on the `socketedge export` graph (preprocessing + N sources + ζ in one graph)
- separate: one session per source (each with its own in-graph preprocessing), ζ-mixing in numpy
- eager:    socketedge.models.ensemble.Ensemble in PyTorch (BatchNorm and weight norm as trained)
fp32 and int8 (static Q/DQ, per-channel; calibrated on random frames, which is fine for timing random weights):
symmetric int8 activations (the default, TensorRT-compatible) and, fused only, uint8 activations (onnxruntime's
fast x86 kernels are u8×s8).

    python benchmarks/export_latency.py                               # 2 × resnet18 at 224 px, 480×640 frames
    python benchmarks/export_latency.py --archs mobilenet_v3_large,resnet18 --runs 100
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def median_ms(variants: dict, runs: int, warmup: int = 5) -> dict[str, float]:
    """Median milliseconds per variant, timed round-robin (run i of every variant, then run i + 1, …) so a
    change in machine load during the benchmark hits every variant alike and the ratios stay comparable."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="resnet18,resnet18", help="comma-separated source architectures")
    ap.add_argument("--size", type=int, default=224, help="model input size (px)")
    ap.add_argument("--frame", default="480x640", help="raw depth frame HxW fed to every variant")
    ap.add_argument("--runs", type=int, default=50, help="timed runs per variant (median reported), >= 50")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch and onnxruntime (0: all free)")
    args = ap.parse_args()
    if args.runs < 50:
        ap.error("--runs must be at least 50")

    import onnxruntime as ort
    import torch
    from rich.console import Console
    from rich.table import Table

    from socketedge.data.preprocess import preprocessing_for
    from socketedge.export import onnx_export, precision
    from socketedge.export.frames import synthetic_frames
    from socketedge.fuse import fuse
    from socketedge.models.ensemble import Ensemble, Member
    from socketedge.models.source_model import new_source_model
    from socketedge.runtime.backends import free_cores

    console = Console()
    threads = args.threads or free_cores()
    torch.set_num_threads(threads)
    h, w = (int(v) for v in args.frame.split("x"))
    archs = args.archs.split(",")
    classes = [f"c{i}" for i in range(10)]

    torch.manual_seed(0)
    members = [Member(m.eval(), preprocessing_for(m.meta, "depth"))
               for m in (new_source_model(a, classes, input_size=args.size) for a in archs)]
    zeta = torch.softmax(torch.randn(len(members)), 0)
    ensemble = Ensemble(members, zeta).eval()
    calib = synthetic_frames("depth", (h, w), 16, seed=1)

    def graphs(parts: Ensemble):
        fused, _ = fuse(parts)
        g = onnx_export.clean(onnx_export.torch_to_onnx(fused, onnx_export.example_frames(fused, torch.uint16)))
        return {"fp32": g, "int8": precision.to_int8(g, calib), "int8-u8": precision.to_int8(g, calib, "uint8")}

    def session(model):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.log_severity_level = 3
        return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])

    console.print(f"exporting {len(archs)} × {'+'.join(archs)} at {args.size}px (fused and separate) …")
    fused_graphs = graphs(ensemble)
    separate_graphs = [graphs(Ensemble([m])) for m in members]

    x = np.random.default_rng(0).integers(300, 5000, (1, 1, h, w)).astype(np.uint16)
    z = zeta.numpy()
    variants = {}
    for prec in ("fp32", "int8"):
        fused_s = session(fused_graphs[prec])
        separate_s = [session(g[prec]) for g in separate_graphs]

        def run_fused(fused_s=fused_s):
            return fused_s.run(["probs"], {"frames": x})[0]

        def run_separate(separate_s=separate_s):
            probs = sum(zk * s.run(["probs"], {"frames": x})[0] for zk, s in zip(z, separate_s))
            return probs, probs.argmax(1)

        # same numbers first: fused == separate within float error
        np.testing.assert_allclose(run_fused(), run_separate()[0], atol=1e-4 if prec == "fp32" else 5e-2)
        variants[f"onnxruntime fused ({prec})"] = run_fused
        variants[f"onnxruntime {len(archs)} separate sessions ({prec})"] = run_separate

    fused_u8 = session(fused_graphs["int8-u8"])
    variants["onnxruntime fused (int8, uint8 activations: not for TensorRT)"] = (
        lambda: fused_u8.run(["probs"], {"frames": x})[0])

    xt = torch.from_numpy(x)

    def run_eager():
        with torch.inference_mode():
            probs = ensemble(xt)
            return probs, probs.argmax(1)

    variants["PyTorch eager ensemble (fp32)"] = run_eager
    rows = list(median_ms(variants, args.runs).items())
    base = rows[0][1]
    table = Table(title=f"batch 1, {h}×{w} uint16 depth frame → {len(classes)} classes; {threads} CPU thread(s); "
                        f"median of {args.runs} interleaved runs")
    table.add_column("variant")
    table.add_column("median ms", justify="right")
    table.add_column("× fused fp32", justify="right")
    for name, ms in rows:
        table.add_row(name, f"{ms:.2f}", f"{ms / base:.2f}")
    console.print(table)
    console.print(f"onnxruntime {ort.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
