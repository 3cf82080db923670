"""Synthetic RGB-D frames per second at 96 and 224 px, measured side by side in one run.

Rows: one frame at a time (what a naive loop pays), batches of 16 frames of one class (the synth/dataset path
and the virtual camera's prefetch), the synthetic:// camera as a consumer sees it, and `synthesize` writing PNGs
with its thread pool (render + encode + disk). Each cell is the best of --repeats runs of --frames frames over
the default task classes, so one scheduling hiccup does not decide the number.

    python benchmarks/synth_speed.py
    python benchmarks/synth_speed.py --sizes 64 96 224 --frames 96 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(size: int, frames: int, repeats: int, workers: int) -> dict[str, float]:
    from socketedge.capture.base import open_source
    from socketedge.synth import DEFAULT_TASK_CLASSES, ImageSpec, render_batch, synthesize

    classes = list(DEFAULT_TASK_CLASSES)
    per_class = max(1, frames // len(classes))
    n = per_class * len(classes)

    def single():
        for cls in classes:
            for i in range(per_class):
                render_batch([ImageSpec("bench", cls, i)], size)

    def batched():
        for cls in classes:
            for lo in range(0, per_class, 16):
                render_batch([ImageSpec("bench", cls, i) for i in range(lo, min(lo + 16, per_class))], size)

    def camera():
        with open_source(f"synthetic://?size={size}&frames={n}") as src:
            for _ in src:
                pass

    tmp = Path(tempfile.mkdtemp(prefix="synth-bench-"))

    def dataset():
        # source split only: per_class RGB images per class (eval/target/TI set to 1 to keep the count exact)
        synthesize(tmp / "ds", classes, ["ring"], per_class=per_class, target_per_class=1, ti_per_class=1,
                   eval_per_class=1, size=size, overwrite=True, workers=workers, progress=False)

    extra = 2 * len(classes) + 1  # the 1-per-class target/eval images and the one TI pair
    try:
        return {"single": n / _best(single, repeats), "batch16": n / _best(batched, repeats),
                "camera": n / _best(camera, repeats),
                f"synthesize x{workers}": (n + extra) / _best(dataset, repeats)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    ap.add_argument("--frames", type=int, default=96, help="frames per measurement (spread over 6 classes)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    rows = {size: measure(size, args.frames, args.repeats, args.workers) for size in args.sizes}
    cols = list(next(iter(rows.values())))
    table = Table(title=f"synthetic RGB-D frames / s ({os.cpu_count()} CPUs, {args.frames} frames, "
                        f"best of {args.repeats})")
    table.add_column("size")
    for c in cols:
        table.add_column(c, justify="right")
    table.add_column("batch16 / single", justify="right")
    for size, r in rows.items():
        table.add_row(f"{size} px", *(f"{r[c]:.1f}" for c in cols), f"{r['batch16'] / r['single']:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()
