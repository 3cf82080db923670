"""CPU latency and top-1 agreement of the exported graph per precision, for several architectures, measured side
by side in one run: batch 1, a real 480×640 Kinect depth frame (uint16 mm) in, probabilities out.

Per architecture (one source at --size px, fused with its depth preprocessing as `socketedge export` does):

- fp32:        the fused float graph (BatchNorm folded into the convolutions before export)
- int8:        QDQ, symmetric int8 activations — TensorRT's form, the `--precision int8` default
- int8-uint8:  QDQ, asymmetric uint8 activations, whole network body, 7-bit weights — onnxruntime's form
               (`--int8-activations uint8`; what `--precision auto` can pick for a CPU)
- PyTorch eager fp32, for reference; with --sources N > 1 also N separate onnxruntime sessions mixed in numpy

The models are made realistic on real data (../shared/data/ntu_kinect_gesture, subjects P1–P5): random-init
torchvision weights (EfficientNet-Lite0: its packaged ImageNet weights) with BatchNorm statistics re-estimated on
the depth frames (as `adapt` does after its last epoch) and a nearest-class-mean classifier on their features,
so predictions are spread over the 10 gestures and not a constant class. int8 is calibrated on 64 of those frames;
top-1 agreement with the fp32 graph is measured on held-out subjects P6–P10. Latency: every variant timed
round-robin (run i of each, then run i + 1, …), median of --runs, at each --threads count. The kernel census
(the graph as onnxruntime's optimizer saves it) and the per-node profile (onnxruntime's profiler) show which
convolutions run as int8 kernels and where the time goes.

    python benchmarks/export_latency.py                          # resnet18, mobilenet_v3_large, efficientnet_lite0
    python benchmarks/export_latency.py --archs resnet18 --sources 2 --threads 2 --runs 100
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ntu_kinect_gesture"
VARIANTS = ("fp32", "int8", "int8-uint8")


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


def ntu_frames(root: Path, subjects: set[int], limit: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Up to ``limit`` depth frames (uint16 mm, 480×640) of ``subjects``, a seeded even pick, and their labels."""
    from socketedge.data.imageio import read_image

    paths = sorted(p for p in (root / "depth").rglob("*.png")
                   if int(re.match(r"P(\d+)_", p.name).group(1)) in subjects)
    if not paths:
        raise SystemExit(f"no depth frames under {root / 'depth'}; see {root / 'PROVENANCE.md'}")
    pick = np.random.default_rng(seed).permutation(len(paths))[:limit]
    chosen = [paths[i] for i in sorted(pick)]
    labels = np.array([int(p.parent.name[1:]) - 1 for p in chosen])
    return [read_image(p, "depth") for p in chosen], labels


def logit_error(probs: np.ndarray, ref: np.ndarray) -> float:
    """‖Δ logits‖ / ‖spread of the fp32 logits over the frames‖, logits recovered from the probabilities up to a
    per-frame constant: how far a variant moves the classifier's input compared with how much frames differ
    (0: identical; near 1: as if the frame were replaced by another)."""
    def centred(p):
        lp = np.log(np.maximum(p.astype(np.float64), 1e-30))
        return lp - lp.mean(1, keepdims=True)

    a, b = centred(probs), centred(ref)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b - b.mean(0)))


def saturation_check(fused_graphs: dict, frames, calib, threads: int) -> dict[str, tuple[float, float]]:
    """The uint8 form with full 8-bit weights run by the int8 kernels and simulated in float (graph optimizations
    off: every Q/DQ computed in float32, no kernel saturates), next to the 7-bit (reduce_range) form that is
    exported: what the u8×s8 kernels of a CPU without VNNI cost in accuracy, apart from quantization itself."""
    import onnxruntime as ort

    from socketedge.export import precision

    eight_bit = precision.to_int8(fused_graphs["fp32"], calib, "uint8", reduce_range=False)

    def run(model, optimize: bool) -> np.ndarray:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.log_severity_level = threads, 3
        if not optimize:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        s = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
        return np.concatenate([s.run(["probs"], {"frames": f[None, None]})[0] for f in frames])

    ref = run(fused_graphs["fp32"], True)
    out = {}
    for name, model, optimize in (("uint8, 8-bit weights, int8 kernels", eight_bit, True),
                                  ("uint8, 8-bit weights, simulated in float", eight_bit, False),
                                  ("uint8, 7-bit weights (exported), int8 kernels", fused_graphs["int8-uint8"], True)):
        p = run(model, optimize)
        out[name] = (float((p.argmax(1) == ref.argmax(1)).mean()), logit_error(p, ref))
    return out


def realistic_member(arch: str, size: int, frames, labels, classes):
    """One source: BatchNorm re-estimated on the frames, a nearest-class-mean classifier on its features."""
    import torch

    from socketedge.adapt.bn_stats import reestimate_running_stats
    from socketedge.data.preprocess import preprocessing_for
    from socketedge.models.ensemble import Member
    from socketedge.models.source_model import new_source_model

    model = new_source_model(arch, classes, pretrained=arch.startswith("efficientnet_lite"), input_size=size)
    member = Member(model, preprocessing_for(model.meta, "depth"))
    raw = [torch.from_numpy(np.stack(frames[i:i + 16]).astype(np.int32))[:, None] for i in range(0, len(frames), 16)]
    reestimate_running_stats(member.model.encoder, [member.preprocess(x) for x in raw])
    member.eval()
    with torch.no_grad():
        feats = torch.cat([member.features(x) for x in raw]).double()
    # nearest class mean (Euclidean) written as a linear layer: logit_k = f·c_k − |c_k|²/2, scaled to a spread
    # like a trained classifier's; well conditioned, unlike a least-squares fit on a few hundred frames
    centroids = torch.stack([feats[torch.from_numpy(labels == k)].mean(0) for k in range(len(classes))])
    weight, bias = centroids, -0.5 * (centroids ** 2).sum(1)
    logits = feats @ weight.T + bias
    scale = 3.0 / (logits - logits.mean(1, keepdim=True)).std()
    head = torch.nn.Linear(feats.shape[1], len(classes))
    head.weight.data = (scale * weight).float()
    head.bias.data = (scale * bias).float()
    model.classifier = head
    return member.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="resnet18,mobilenet_v3_large,efficientnet_lite0")
    ap.add_argument("--size", type=int, default=224, help="model input size (px)")
    ap.add_argument("--sources", type=int, default=1, help="sources per model (>1: also N separate sessions)")
    ap.add_argument("--runs", type=int, default=50, help="timed runs per variant (median reported), >= 50")
    ap.add_argument("--threads", default="2,1", help="comma-separated intra-op thread counts to time with")
    ap.add_argument("--fit-frames", type=int, default=200, help="P1–P5 frames for BatchNorm + classifier fit")
    ap.add_argument("--calib-frames", type=int, default=64, help="P1–P5 frames int8 is calibrated on")
    ap.add_argument("--agree-frames", type=int, default=500, help="held-out P6–P10 frames for top-1 agreement")
    ap.add_argument("--data", type=Path, default=DATA, help="the NTU Kinect gesture folder")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-node profile")
    ap.add_argument("--saturation-frames", type=int, default=100, help="held-out frames for the u8×s8 "
                    "saturation check (8-bit weights in the int8 kernels vs the same graph simulated in float); "
                    "0 skips it")
    args = ap.parse_args()
    if args.runs < 50:
        ap.error("--runs must be at least 50")

    import onnxruntime as ort
    import torch
    from rich.console import Console
    from rich.table import Table

    from socketedge.export import onnx_export, precision
    from socketedge.export.auto import Measured, choose
    from socketedge.fuse import fuse
    from socketedge.models.ensemble import Ensemble
    from socketedge.runtime.ort_profile import cpu_features, kernel_census, op_times_ms
    from socketedge.utils.progress import make_progress

    console = Console(width=200)
    thread_counts = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(max(thread_counts))
    archs = args.archs.split(",")
    classes = [f"G{i}" for i in range(1, 11)]
    fit, fit_labels = ntu_frames(args.data, {1, 2, 3, 4, 5}, args.fit_frames, seed=0)
    calib = fit[:: max(1, len(fit) // args.calib_frames)][: args.calib_frames]
    held, held_labels = ntu_frames(args.data, {6, 7, 8, 9, 10}, args.agree_frames, seed=1)
    x = held[0][None, None]
    cpu = cpu_features()
    console.print(f"CPU {cpu['model']} ({cpu['machine']}; int8-relevant: {', '.join(cpu['int8_features']) or 'none'})"
                  f", onnxruntime {ort.__version__}, torch {torch.__version__}; {len(fit)} fit / {len(calib)} "
                  f"calibration frames (P1–P5), {len(held)} held-out frames (P6–P10), {x.shape[3]}×{x.shape[2]}")

    def session(model, threads):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.log_severity_level = 3
        return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])

    def graphs(ensemble: Ensemble, quantize: bool = True) -> dict:
        fused, folds = fuse(ensemble)
        g = onnx_export.clean(onnx_export.torch_to_onnx(fused, onnx_export.example_frames(fused, torch.uint16)))
        out = {"fp32": g}
        if quantize:
            out.update({"int8": precision.to_int8(g, calib), "int8-uint8": precision.to_int8(g, calib, "uint8")})
        return out, folds

    results: dict[str, dict] = {}
    with make_progress(transient=True) as progress:
        task = progress.add_task("benchmark", total=len(archs), terms="")
        for arch in archs:
            progress.update(task, terms=f"{arch}: fit + export")
            torch.manual_seed(0)
            members = [realistic_member(arch, args.size, fit, fit_labels, classes) for _ in range(args.sources)]
            ensemble = Ensemble(members).eval()
            fused_graphs, folds = graphs(ensemble)
            progress.update(task, terms=f"{arch}: agreement on {len(held)} held-out frames")
            agree_sessions = {v: session(g, max(thread_counts)) for v, g in fused_graphs.items()}
            probs = {v: np.concatenate([s.run(["probs"], {"frames": f[None, None]})[0] for f in held])
                     for v, s in agree_sessions.items()}
            ref = probs["fp32"].argmax(1)
            info = {"agreement": {v: float((p.argmax(1) == ref).mean()) for v, p in probs.items()},
                    "max_abs": {v: float(np.abs(p - probs["fp32"]).max()) for v, p in probs.items()},
                    "logit_err": {v: logit_error(p, probs["fp32"]) for v, p in probs.items()},
                    "accuracy": float((ref == held_labels).mean()), "classes_predicted": len(set(ref.tolist())),
                    "census": {v: kernel_census(g.SerializeToString()) for v, g in fused_graphs.items()},
                    "bn_folded": sum(f.batchnorm_folded for f in folds), "bn_left": sum(f.batchnorm_left for f in folds),
                    "times": {}, "profile": {}}
            xt = torch.from_numpy(x)
            for threads in thread_counts:
                progress.update(task, terms=f"{arch}: timing, {threads} thread(s)")
                torch.set_num_threads(threads)
                variants = {}
                for v, g in fused_graphs.items():
                    s = session(g, threads)
                    variants[v] = lambda s=s: s.run(["probs"], {"frames": x})[0]
                if args.sources > 1:
                    separate = [session(graphs(Ensemble([m]), quantize=False)[0]["fp32"], threads) for m in members]
                    z = ensemble.zeta.detach().numpy()

                    def run_separate(separate=separate, z=z):
                        return sum(zk * s.run(["probs"], {"frames": x})[0] for zk, s in zip(z, separate))

                    variants[f"{args.sources} separate sessions fp32"] = run_separate

                def run_eager():
                    with torch.inference_mode():
                        return ensemble(xt)

                variants["PyTorch eager fp32"] = run_eager
                info["times"][threads] = median_ms(variants, args.runs)
            if not args.no_profile:
                progress.update(task, terms=f"{arch}: per-node profile")
                info["profile"] = {v: op_times_ms(g.SerializeToString(), x, threads=1, runs=10)
                                   for v, g in fused_graphs.items()}
            if args.saturation_frames:
                progress.update(task, terms=f"{arch}: u8×s8 saturation check")
                info["saturation"] = saturation_check(fused_graphs, held[: args.saturation_frames], calib,
                                                      max(thread_counts))
            results[arch] = info
            progress.advance(task)

    for threads in thread_counts:
        table = Table(title=f"batch 1, {x.shape[2]}×{x.shape[3]} uint16 depth frame → 10 classes, {args.size} px, "
                            f"{args.sources} source(s); {threads} intra-op thread(s); median of {args.runs} "
                            "interleaved runs")
        for col in ("architecture", "variant", "median ms", "× fp32 time", "fp32 / variant", "top-1 vs fp32",
                    "max |Δp|", "logit err / spread", "kernels (onnxruntime CPU, optimized graph)"):
            table.add_column(col, justify="left" if col in ("architecture", "variant") or col.startswith("kernels")
                             else "right")
        for arch, info in results.items():
            times = info["times"][threads]
            base = times["fp32"]
            for name, ms in times.items():
                agree = info["agreement"].get(name)
                census = info["census"].get(name)
                table.add_row(arch, name, f"{ms:.2f}", f"{ms / base:.2f}", f"{base / ms:.2f}×",
                              f"{100 * agree:.2f}%" if agree is not None else "-",
                              f"{info['max_abs'][name]:.3g}" if name in info["max_abs"] else "-",
                              f"{info['logit_err'][name]:.3f}" if name in info["logit_err"] else "-",
                              census.summary() if census is not None else "-")
            table.add_section()
        console.print(table)
        for arch, info in results.items():
            measured = [Measured(v, "fp32" if v == "fp32" else "int8", None, median_ms=info["times"][threads][v],
                                 agreement=info["agreement"][v]) for v in VARIANTS]
            chosen, reason = choose(measured, 0.99)
            console.print(f"  {arch}, {threads} thread(s): --precision auto (≥ 99% agreement) would keep "
                          f"{chosen.name} — {reason}")
    for arch, info in results.items():
        console.print(f"[bold]{arch}[/]: fp32 classifier {100 * info['accuracy']:.1f}% on held-out gestures "
                      f"(chance 10%), {info['classes_predicted']} classes predicted; BatchNorm folded "
                      f"{info['bn_folded']}, left {info['bn_left']}")
        for v, census in info["census"].items():
            ops = ", ".join(f"{k} {n}" for k, n in census.ops.items()
                            if k in ("Conv", "FusedConv", "QLinearConv", "QuantizeLinear", "DequantizeLinear",
                                     "QLinearAdd", "Add", "Relu", "Clip", "HardSigmoid", "QLinearMul", "Mul",
                                     "Transpose", "QGemm", "Gemm"))
            console.print(f"  optimized graph {v}: {ops}")
        for name, (agree, err) in info.get("saturation", {}).items():
            console.print(f"  {name}: top-1 vs fp32 {100 * agree:.2f}%, logit err / spread {err:.3f}")
        for v, prof in info["profile"].items():
            total = sum(prof.values())
            top = ", ".join(f"{op} {ms:.1f}" for op, ms in list(prof.items())[:6])
            console.print(f"  profile {v} (1 thread, ms/run): total {total:.1f} — {top}")


if __name__ == "__main__":
    main()
