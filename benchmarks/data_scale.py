"""Peak memory and step time of `adapt` as the target set grows: 2k, 20k, 100k synthetic 640×480 depth frames
plus task-irrelevant RGB/depth pairs, measured in one run.

Each measurement is its own process (so its peak RSS is its own): `Adapter` set-up (decode, ψ, held-out sets),
then `run()` — BatchNorm re-estimation and pseudo-labels over every target frame at native resolution, then
``--steps`` real SOCKET steps (all terms, batch 32) — stopped there. At ``--side-by-side`` (2k) the in-memory path
(today's) and the disk-backed path (every set in the disk cache) run alternately ``--rounds`` times, side by side;
the other sizes run with the default memory budget (1 GiB: the target goes to the disk cache from ~8k frames on).
The first disk run of a size builds the cache; later ones reuse it (see "setup").

Frames: ``--pool`` distinct synthetic scenes per modality (a tilted floor, a wall and boxes at random depths,
no per-pixel noise, so the PNGs compress well), written under N file names: every frame is decoded from its own
file, but disk use stays small. Disk needed (printed before the run): the PNGs (~40 KB per depth frame) + the
cache (N × 256² × 2 B target, 224² × 5 B per TI pair: ~13.1 + 2.5 GB at 100k); everything is deleted after each
size unless --keep.

    python benchmarks/data_scale.py                                  # 2k, 20k, 100k (long on 2 cores)
    python benchmarks/data_scale.py --sizes 2000,20000 --steps 20    # quick check
    nice python benchmarks/data_scale.py --sizes 100000 --passes none --work /big/disk/tmp
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

W, H = 640, 480


class _Stop(Exception):
    pass


def _depth_scene(rng) -> "np.ndarray":
    import numpy as np

    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    floor = 900 + 6.0 * (H - yy) + rng.uniform(-0.5, 0.5) * xx  # a tilted floor, farther up the image
    depth = np.where(yy > H * rng.uniform(0.3, 0.5), floor, rng.uniform(2500, 4500))  # and a wall behind it
    for _ in range(rng.integers(1, 4)):  # boxes at random depths
        x0, y0 = rng.integers(0, W - 120), rng.integers(0, H - 120)
        w, h = rng.integers(60, 200), rng.integers(60, 200)
        depth[y0:y0 + h, x0:x0 + w] = rng.uniform(600, 2500)
    depth[:, : rng.integers(0, 40)] = 0  # the sensor's blind band: no measurement
    return depth.astype(np.uint16)


def _rgb_scene(rng) -> "np.ndarray":
    import numpy as np

    img = np.empty((H, W, 3), np.uint8)
    img[:] = rng.integers(40, 200, 3, dtype=np.uint8)
    for _ in range(rng.integers(1, 4)):
        x0, y0 = rng.integers(0, W - 120), rng.integers(0, H - 120)
        img[y0:y0 + rng.integers(60, 200), x0:x0 + rng.integers(60, 200)] = rng.integers(0, 255, 3, dtype=np.uint8)
    return img


def _n_ti(n: int, ratio: float) -> int:
    return max(64, int(n * ratio))


def make_data(root: Path, n: int, n_ti: int, pool: int) -> dict:
    """target/depth/<i>.png (unlabeled) and ti/{rgb,depth}/x/<i>.png; returns bytes written."""
    import numpy as np

    from socketedge.data.imageio import encode_image

    rng = np.random.default_rng(0)
    depth = [encode_image(_depth_scene(rng), ".png") for _ in range(pool)]
    rgb = [encode_image(_rgb_scene(rng), ".png") for _ in range(pool)]
    total = 0
    for folder in ("target/depth", "ti/rgb/x", "ti/depth/x"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        data = depth[(i * 7) % pool]
        (root / "target" / "depth" / f"{i:06d}.png").write_bytes(data)
        total += len(data)
    for i in range(n_ti):
        for folder, blobs in (("ti/rgb/x", rgb), ("ti/depth/x", depth)):
            data = blobs[(i * 5 + 3) % pool]
            (root / folder / f"{i:06d}.png").write_bytes(data)
            total += len(data)
    return {"png_bytes": total, "mean_depth_png": sum(map(len, depth)) / pool}


def make_source(root: Path, arch: str, size: int) -> Path:
    import torch

    from socketedge.models.checkpoint import save_source
    from socketedge.models.source_model import new_source_model

    torch.manual_seed(0)
    return save_source(new_source_model(arch, [f"c{j}" for j in range(10)], input_size=size), root / "src.ckpt")


def child(args) -> None:
    """One measurement: Adapter set-up, the pre-epoch passes, then --steps steps."""
    import torch

    from socketedge.adapt.config import AdaptConfig
    from socketedge.adapt.run import Adapter

    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(args.child_root)
    budget = {"memory": 1e6, "disk": 0.0, "default": None}[args.child_mode]
    passes = {} if args.passes == "full" else {"recalibrate_bn": "never", "lambda_pl": 0.0}
    cfg = AdaptConfig(sources=[root / "src.ckpt"], target=root / "target" / "depth", ti=root / "ti",
                      out=root / f"bundle-{os.getpid()}", epochs=1, batch_size=args.batch, device="cpu",
                      show_progress=False, memory_budget=budget, cache_dir=Path(args.child_cache), **passes)
    stamps: list[float] = []

    def on_step(step: int) -> None:
        stamps.append(time.perf_counter())
        if step > args.steps:
            raise _Stop

    t0 = time.perf_counter()
    adapter = Adapter(cfg, on_step=on_step)
    t1 = time.perf_counter()
    setup_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        adapter.run()
    except _Stop:
        pass
    intervals = sorted(b - a for a, b in zip(stamps[:-1], stamps[1:]))
    print(json.dumps({
        "mode": args.child_mode, "on_disk": adapter.target.on_disk, "setup_s": t1 - t0,
        "pre_epoch_s": stamps[0] - t1, "step_s": intervals[len(intervals) // 2],
        "setup_peak_rss_mb": setup_rss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


def gather_side_by_side(root: Path, cache: Path, load: int, size: int, batch: int, reps: int = 200) -> dict:
    """The data part of a step alone — gather a shuffled batch of target frames and crop/flip it — from memory
    and from the disk cache, alternating in one process (the whole step is dominated by compute and noise)."""
    import torch

    from socketedge.data.cache import FrameStorage, apply_crop, crop_flip_indices, decode_set
    from socketedge.data.folders import target_folder

    disk = decode_set(target_folder(root / "target" / "depth"), load, None, False, FrameStorage(0, cache)).raw
    mem = disk.tensor()  # the same frames, in memory
    g = torch.Generator().manual_seed(0)
    times: dict[str, list[float]] = {"memory": [], "disk": []}
    for r in range(reps):
        idx = torch.randperm(len(mem), generator=g)[:batch]
        rows, cols = crop_flip_indices(batch, load, size, g)
        for name in ("memory", "disk") if r % 2 else ("disk", "memory"):
            t0 = time.perf_counter()
            apply_crop((mem if name == "memory" else disk)[idx], rows, cols)
            times[name].append(time.perf_counter() - t0)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def _measure(args, root: Path, cache: Path, mode: str) -> dict:
    cmd = [sys.executable, __file__, "--_child", mode, "--_root", str(root), "--_cache", str(cache),
           "--steps", str(args.steps), "--batch", str(args.batch), "--passes", args.passes] + (["--threads", str(args.threads)]
                                                                      if args.threads else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"MPLBACKEND": "Agg"})
    if proc.returncode != 0:
        sys.exit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2000,20000,100000", help="target frame counts, comma-separated")
    ap.add_argument("--ti-ratio", type=float, default=0.1, help="TI pairs per target frame (at least 64)")
    ap.add_argument("--steps", type=int, default=30, help="timed adaptation steps per measurement")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3, help="alternating in-memory / disk runs at --side-by-side")
    ap.add_argument("--side-by-side", type=int, default=2000,
                    help="the size at which in-memory and disk-backed runs alternate (others: default budget)")
    ap.add_argument("--passes", choices=("full", "none"), default="full",
                    help="full: adapt's defaults, i.e. BatchNorm re-estimation and pseudo-labels over every target "
                    "frame at native resolution before the first step (~50 ms/frame on 2 CPU cores); none: "
                    "--recalibrate-bn never --lambda-pl 0, only the decoded-frame path")
    ap.add_argument("--arch", default="tiny_cnn")
    ap.add_argument("--input-size", type=int, default=224, help="model input (load size 256/224 × this)")
    ap.add_argument("--pool", type=int, default=64, help="distinct synthetic scenes per modality")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per run (0: torch's default)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the generated frames and the cache")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--_child", dest="child_mode", help=argparse.SUPPRESS)
    ap.add_argument("--_root", dest="child_root", help=argparse.SUPPRESS)
    ap.add_argument("--_cache", dest="child_cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_mode:
        child(args)
        return

    sizes = sorted(int(s) for s in args.sizes.split(","))
    load = round(args.input_size * 256 / 224)
    for n in sizes:
        nt = _n_ti(n, args.ti_ratio)
        cache_gb = (n * load * load * 2 + nt * args.input_size ** 2 * 5) / 1e9
        print(f"{n} frames + {nt} TI pairs: needs ~{cache_gb + (n + 2 * nt) * 45e3 / 1e9:.1f} GB of disk "
              f"({cache_gb:.1f} GB cache + PNGs)", flush=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="socketedge-data-scale-"))
    rows, gather = [], None
    try:
        for n in sizes:
            root, cache = work / f"n{n}", work / f"cache{n}"
            root.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            info = make_data(root, n, _n_ti(n, args.ti_ratio), args.pool)
            make_source(root, args.arch, args.input_size)
            print(f"\n{n} frames: wrote {info['png_bytes'] / 1e9:.2f} GB of PNGs "
                  f"({info['mean_depth_png'] / 1e3:.0f} KB per depth frame) in {time.perf_counter() - t:.0f} s",
                  flush=True)
            modes = (["memory", "disk"] * args.rounds) if n == args.side_by_side else ["default"]
            for mode in modes:
                r = _measure(args, root, cache, mode) | {"frames": n, "ti_pairs": _n_ti(n, args.ti_ratio)}
                rows.append(r)
                print(f"  {mode:8s} on_disk={r['on_disk']!s:5s} setup {r['setup_s']:7.1f} s  pre-epoch "
                      f"{r['pre_epoch_s']:7.1f} s  step {r['step_s'] * 1e3:7.1f} ms  peak RSS "
                      f"{r['peak_rss_mb']:7.0f} MB", flush=True)
            if n == args.side_by_side:
                gather = gather_side_by_side(root, cache, load, args.input_size, args.batch)
                print(f"  data part of a step (gather {args.batch} + crop/flip, one process, alternating, median of "
                      f"200): memory {gather['memory'] * 1e3:.2f} ms, disk {gather['disk'] * 1e3:.2f} ms", flush=True)
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
                shutil.rmtree(cache, ignore_errors=True)
    finally:
        if not args.keep and args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\npasses: {args.passes}; {args.arch} at {args.input_size} px (frames cached at {load} px), batch "
          f"{args.batch}, median of {args.steps} steps")
    print("frames   TI pairs  path     setup s  pre-epoch s  step ms  peak RSS MB")
    for r in rows:
        print(f"{r['frames']:7d}  {r['ti_pairs']:8d}  {'disk' if r['on_disk'] else 'memory':7s}  {r['setup_s']:7.1f}"
              f"  {r['pre_epoch_s']:11.1f}  {r['step_s'] * 1e3:7.1f}  {r['peak_rss_mb']:11.0f}")
    first = [r for r in rows if r["frames"] == args.side_by_side]
    mem = sorted(r["step_s"] for r in first if r["mode"] == "memory")
    disk = sorted(r["step_s"] for r in first if r["mode"] == "disk")
    if mem and disk:
        m, d = mem[len(mem) // 2], disk[len(disk) // 2]
        print(f"\nat {args.side_by_side} frames: disk-backed step / in-memory step = {d / m:.3f} "
              f"(medians over {len(mem)} alternating rounds; per round "
              f"{', '.join(f'{b / a:.3f}' for a, b in zip([r['step_s'] for r in first if r['mode'] == 'memory'], [r['step_s'] for r in first if r['mode'] == 'disk']))})")
    if gather:
        print(f"data part alone: disk / memory = {gather['disk'] / gather['memory']:.3f} "
              f"({gather['disk'] * 1e3:.2f} vs {gather['memory'] * 1e3:.2f} ms per batch)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
