"""Seconds per SOCKET adaptation step and peak memory, next to the compute floor, measured in one run.

Floor = a bare forward of the same networks on a target batch and a TI batch held in memory, one backward and
one SGD step: what any implementation must pay. Step = socketedge's real adaptation step (all five loss terms,
BN hooks, batched augmentation from the in-memory cache, two backward passes). Fixed TI = the same step with
`--no-ti-augment`: the TI pairs uncropped and ψ computed once, instead of the default paired crops whose ψ needs
one more (frozen, no-gradient) forward of the TI batch per source every step; `crops / fixed` is that cost. Each
configuration runs in its own process so that its peak memory (RSS on CPU, torch's max allocated on CUDA) is its
own.

    python benchmarks/adapt_speed.py                       # resnet18/50 × 112/224 px × 1/2 sources, CPU
    python benchmarks/adapt_speed.py --archs resnet18 --sizes 112 --steps 3
    python benchmarks/adapt_speed.py --device cuda         # on a GPU machine
    python benchmarks/adapt_speed.py --archs resnet18 --sizes 112 --sources 1 --procs 1,2   # data-parallel

`--procs 1,2` also runs the step as a 2-rank data-parallel job (torchrun, `socketedge.adapt.distributed`) with
the SAME global batch, next to the 1-process step: on CPU the ranks split the cores (OMP_NUM_THREADS = threads /
ranks), on CUDA each rank takes one GPU. Step time = slowest rank's median; peak memory = sum over ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mb(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _make_data(root: Path, n: int, size: int) -> None:
    import numpy as np

    from socketedge.data.imageio import write_image

    rng = np.random.default_rng(0)
    for i in range(n):
        write_image(root / "target" / "depth" / f"{i:05d}.png", rng.integers(300, 5000, (size, size), dtype=np.uint16))
        write_image(root / "ti" / "rgb" / "x" / f"{i:05d}.png", rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
        write_image(root / "ti" / "depth" / "x" / f"{i:05d}.png", rng.integers(300, 5000, (size, size), dtype=np.uint16))


def _sources(root: Path, arch: str, k: int, size: int) -> list[Path]:
    import torch

    from socketedge.models.checkpoint import save_source
    from socketedge.models.source_model import new_source_model

    out = []
    for i in range(k):
        torch.manual_seed(i)
        out.append(save_source(new_source_model(arch, [f"c{j}" for j in range(10)], input_size=size),
                               root / f"src{i}.ckpt"))
    return out


def run_step(arch: str, size: int, k: int, steps: int, batch: int, device: str, ti_augment: bool = True) -> dict:
    from socketedge.adapt.config import AdaptConfig
    from socketedge.adapt.run import Adapter

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = batch * (steps + 1)
        _make_data(root, n, round(size * 256 / 224))
        sources = _sources(root, arch, k, size)
        stamps: list[float] = []
        cfg = AdaptConfig(sources=sources, target=root / "target" / "depth", ti=root / "ti", out=root / "bundle",
                          epochs=1, batch_size=batch, device=device, show_progress=False, ti_holdout=0.0,
                          ti_augment=ti_augment)
        adapter = Adapter(cfg, on_step=lambda s: stamps.append(time.perf_counter()))
        if device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
        adapter.run()
        # intervals between consecutive step ends within the epoch: pure step cost (pseudo-labels excluded)
        intervals = [b - a for a, b in zip(stamps[:-1], stamps[1:])]
        return {"seconds": sorted(intervals)[len(intervals) // 2], "peak_mb": _peak_mb(device)}


def run_floor(arch: str, size: int, k: int, steps: int, batch: int, device: str) -> dict:
    import torch

    from socketedge.models.source_model import new_source_model

    models = [new_source_model(arch, [f"c{j}" for j in range(10)], input_size=size).to(device).train()
              for _ in range(k)]
    params = [p for m in models for p in m.parameters()]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    xt = torch.randn(batch, 3, size, size, device=device)
    xti = torch.randn(batch, 3, size, size, device=device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = sum(m(xt).mean() + m.encoder(xti).mean() for m in models)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times = times[1:]  # first iteration warms up allocators / kernels
    return {"seconds": sorted(times)[len(times) // 2], "peak_mb": _peak_mb(device)}


def child(args) -> None:
    if args.mode == "floor":
        res = run_floor(args.arch, args.size, args.k, args.steps, args.batch, args.device)
    else:
        res = run_step(args.arch, args.size, args.k, args.steps, args.batch, args.device,
                       ti_augment=args.mode == "step")
    print(json.dumps(res | {"rank": int(os.environ.get("RANK", "0"))}), flush=True)


def _child_cmd(args, mode: str, arch: str, size: int, k: int, procs: int) -> tuple[list[str], dict]:
    script = [__file__, "--_child", mode, "--_arch", arch, "--_size", str(size), "--_k", str(k), "--steps",
              str(args.steps), "--batch", str(args.batch), "--device", args.device]
    env = os.environ | {"MPLBACKEND": "Agg"}
    if procs == 1:
        return [sys.executable, *script] + (["--threads", str(args.threads)] if args.threads else []), env
    threads = max(1, (args.threads or os.cpu_count() or 1) // procs)
    env |= {"OMP_NUM_THREADS": str(threads)}
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
            *script, "--threads", str(threads)], env


def _rank_results(stdout: str) -> list[dict]:
    rows = []
    for line in stdout.splitlines():
        if "{" in line:
            try:
                rows.append(json.loads(line[line.index("{"):]))
            except json.JSONDecodeError:
                continue
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="resnet18,resnet50")
    p.add_argument("--sizes", default="112,224")
    p.add_argument("--sources", default="1,2")
    p.add_argument("--steps", type=int, default=3, help="measured steps per configuration (median reported)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    p.add_argument("--procs", default="1", help="data-parallel ranks for the step, e.g. 1,2 (same global batch)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    p.add_argument("--_child", dest="mode", choices=["step", "step-fixed-ti", "floor"], help=argparse.SUPPRESS)
    p.add_argument("--_arch", dest="arch", help=argparse.SUPPRESS)
    p.add_argument("--_size", dest="size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--_k", dest="k", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.mode:
        child(args)
        return

    from rich.console import Console
    from rich.table import Table

    rows = []
    console = Console(width=160)  # the table's columns, also when the output is a pipe or a file
    procs = [int(p) for p in args.procs.split(",")]
    for arch in args.archs.split(","):
        for size in map(int, args.sizes.split(",")):
            for k in map(int, args.sources.split(",")):
                res: dict = {}
                for mode, n in [("floor", 1), ("step-fixed-ti", 1)] + [("step", p) for p in procs]:
                    cmd, env = _child_cmd(args, mode, arch, size, k, n)
                    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    ranks = _rank_results(out.stdout)
                    if out.returncode != 0 or len(ranks) != n:
                        console.print(f"[red]{arch} {size}px {k} src {mode} × {n} failed:[/] {out.stderr[-800:]}")
                        continue
                    res[(mode, n)] = {"seconds": max(r["seconds"] for r in ranks),
                                      "peak_mb": sum(r["peak_mb"] for r in ranks)}
                if ("floor", 1) not in res:
                    continue
                floor = res[("floor", 1)]
                one = res.get(("step", 1))
                fixed = res.get(("step-fixed-ti", 1))
                for n in procs:
                    step = res.get(("step", n))
                    if step is None:
                        continue
                    row = {"arch": arch, "size": size, "sources": k, "device": args.device, "batch": args.batch,
                           "procs": n, "step_s": step["seconds"], "floor_s": floor["seconds"],
                           "ratio": step["seconds"] / floor["seconds"],
                           "speedup_vs_1": one["seconds"] / step["seconds"] if one else None,
                           "fixed_ti_s": fixed["seconds"] if fixed else None,
                           "crops_vs_fixed": step["seconds"] / fixed["seconds"] if fixed and n == 1 else None,
                           "step_peak_mb": step["peak_mb"], "floor_peak_mb": floor["peak_mb"]}
                    rows.append(row)
                    console.print(row)
    table = Table(title=f"adaptation step vs compute floor ({args.device}, global batch {args.batch} target + "
                        f"{args.batch} TI pairs, median of {args.steps} steps)")
    for col in ("arch", "px", "sources", "procs", "step s", "floor s", "step / floor", "1-proc step / this",
                "fixed TI s", "crops / fixed", "peak MB step", "peak MB floor"):
        table.add_column(col, justify="right")
    for r in rows:
        speedup = f"{r['speedup_vs_1']:.2f}" if r["speedup_vs_1"] is not None else "-"
        fixed_s = f"{r['fixed_ti_s']:.2f}" if r["fixed_ti_s"] is not None else "-"
        crops = f"{r['crops_vs_fixed']:.2f}" if r["crops_vs_fixed"] is not None else "-"
        table.add_row(r["arch"], str(r["size"]), str(r["sources"]), str(r["procs"]), f"{r['step_s']:.2f}",
                      f"{r['floor_s']:.2f}", f"{r['ratio']:.2f}", speedup, fixed_s, crops,
                      f"{r['step_peak_mb']:.0f}", f"{r['floor_peak_mb']:.0f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
