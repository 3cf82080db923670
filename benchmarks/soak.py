"""Soak test of the live loop: N synthetic frames through `run` with constant memory, and the loop's overhead
above the pure model latency — both measured side by side in this one process.

    python benchmarks/soak.py                       # 20000 frames, a MobileNetV3-small depth model exported here
    python benchmarks/soak.py --model model.onnx    # any exported model
    python benchmarks/soak.py --frames 2000         # a short smoke run

Prints: model latency vs loop time per frame (overhead %, target < 10 % on CPU), and RSS after warm-up vs at the
end (growth %, target < 5 %). Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


EXPORT = """
import sys, torch
from pathlib import Path
from socketedge.data.preprocess import preprocessing_for
from socketedge.export.pipeline import ExportConfig, export_model
from socketedge.models.bundle import save_bundle
from socketedge.models.ensemble import Ensemble, Member
from socketedge.models.source_model import new_source_model

out, arch, size = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.manual_seed(0)
model = new_source_model(arch, ["cube", "sphere", "cylinder", "cone", "torus", "pyramid"], input_size=size).eval()
bundle = save_bundle(out / "bundle", Ensemble([Member(model, preprocessing_for(model.meta, "depth"))]), "source", {})
print(export_model(ExportConfig(model=bundle, out=out / f"{arch}_{size}.onnx")).onnx_path)
"""


def export_default_model(out_dir: Path, arch: str, size: int) -> Path:
    """A depth model of realistic cost (random weights: the loop does not care what it predicts), exported in
    a child process so that torch never enters this one and the RSS figures are the runtime's own."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", EXPORT, str(out_dir), arch, str(size)], capture_output=True,
                          text=True, check=True)
    return Path(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="an exported .onnx (default: export one here)")
    p.add_argument("--arch", default="mobilenet_v3_small")
    p.add_argument("--input-size", type=int, default=128, help="model input size of the default model")
    p.add_argument("--frames", type=int, default=20000)
    p.add_argument("--size", type=int, default=64, help="synthetic frame size (pixels)")
    p.add_argument("--overhead-frames", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=10, help="alternating model / loop chunks (medians reported)")
    p.add_argument("--threads", type=int)
    p.add_argument("--warmup-frames", type=int, default=1000, help="RSS baseline is taken after these")
    args = p.parse_args(argv)

    from socketedge.capture.base import open_source
    from socketedge.runtime.backends import free_cores, open_backend
    from socketedge.runtime.bench import loop_overhead
    from socketedge.runtime.loop import run_live
    from socketedge.runtime.meters import rss_bytes
    from socketedge.runtime.sinks import JsonLinesSink
    from socketedge.runtime.smoothing import make_smoother

    tmp = tempfile.TemporaryDirectory(prefix="socketedge-soak-")
    model = args.model or export_default_model(Path(tmp.name), args.arch, args.input_size)
    print(f"model {model.name}, {free_cores()} free cores, python {sys.version.split()[0]}")
    ok = True
    with open_backend(model, provider="cpu", threads=args.threads) as backend:
        print(f"backend {backend.describe()}")

        # 1. overhead: the whole loop on in-memory frames vs the model alone on the same frame, alternating
        r = loop_overhead(backend, args.overhead_frames, args.size, args.size, rounds=args.rounds)
        print(f"side by side: loop {r.loop_ms:.3f} ms/frame vs model alone {r.model_ms:.3f} ms/frame "
              f"({r.frames} frames, {args.rounds} alternating rounds, medians): {r.overhead_ms:+.3f} ms = "
              f"{r.overhead_pct:+.1f} %")
        print(f"wall per frame minus infer() of the same frames (means): {r.in_loop_overhead_ms:+.3f} ms on a "
              f"{r.in_loop_model_ms:.3f} ms model = {r.in_loop_overhead_pct:+.1f} %")
        pct = r.own_pct
        verdict = "ok" if pct < 10 else "MISSED"
        ok &= pct < 10
        print(f"loop overhead (per-frame medians: queue → sinks minus the model): {r.own_p50_ms:.3f} ms on a "
              f"{r.infer_p50_ms:.3f} ms model = {pct:.1f} % (target < 10 %) {verdict}")

        # 2. soak: synthetic camera frames through run_live with JSON lines and smoothing, RSS sampled
        samples: list[tuple[int, int]] = []
        every = max(args.frames // 40, 1)

        def on_prediction(pred) -> None:
            n = pred.frame + 1
            if n == args.warmup_frames or n % every == 0:
                samples.append((n, rss_bytes()))

        uri = f"synthetic://?frames={args.frames}&size={args.size}&seed=1"
        t0 = time.perf_counter()
        summary = run_live(backend, lambda: open_source(uri), [JsonLinesSink(os.devnull)],
                           make_smoother("avg", 5), on_prediction=on_prediction)
        wall = time.perf_counter() - t0
        samples.append((summary.frames, rss_bytes()))
    base = next(r for n, r in samples if n >= args.warmup_frames)
    peak = max(r for n, r in samples if n >= args.warmup_frames)
    end = samples[-1][1]
    growth = 100.0 * (end - base) / base
    print(f"soak loop's own work per frame p50/p95: {summary.own_ms['p50']:.3f}/{summary.own_ms['p95']:.3f} ms "
          f"(JSON lines + avg smoothing) vs model p50 {summary.infer_ms['p50']:.3f} ms")
    print(f"soak: {summary.frames} frames in {wall:.1f} s ({summary.fps:.1f} fps), drops {summary.drops}, "
          f"latency p50/p95/p99 {summary.latency_ms['p50']:.2f}/{summary.latency_ms['p95']:.2f}/"
          f"{summary.latency_ms['p99']:.2f} ms, model p50 {summary.infer_ms['p50']:.2f} ms")
    print("  rss MiB: " + " ".join(f"{n}:{r / 2**20:.1f}" for n, r in samples[:: max(len(samples) // 10, 1)]))
    verdict = "ok" if growth < 5 else "MISSED"
    ok &= growth < 5
    print(f"memory: RSS {base / 2**20:.1f} MiB after {args.warmup_frames} frames → {end / 2**20:.1f} MiB at "
          f"{summary.frames} (peak {peak / 2**20:.1f}), growth {growth:+.2f} % (target < 5 %) {verdict}")
    print(f"classes: {summary.histogram}; torch imported in this process: {'torch' in sys.modules}")
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
