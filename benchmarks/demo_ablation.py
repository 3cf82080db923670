"""Loss-term ablation on a finished demo workdir: the demo's data and source model, adapted with several settings,
each scored on the held-out labeled depth images.

    socketedge demo --workdir demo-workdir
    python benchmarks/demo_ablation.py --workdir demo-workdir [--epochs 10] \\
        [--variants "shot;socket;socket:lambda_d=0;socket:lambda_ti=0;socket:lambda_ti=0.003,lambda_d=0.003"]

A variant is METHOD[:KEY=VALUE,...] with keys of AdaptConfig (lambda_ti, lambda_d, lambda_pl, lr, ...).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

DEFAULT_VARIANTS = "shot;socket;socket:lambda_d=0;socket:lambda_ti=0;socket:lambda_ti=0.003,lambda_d=0.003"


def parse_variant(text: str) -> tuple[str, dict]:
    method, _, rest = text.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        options[key.strip()] = float(value)
    return method.strip(), options


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("demo-workdir"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--variants", default=DEFAULT_VARIANTS)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    from rich.console import Console
    from rich.table import Table

    from socketedge.adapt.config import AdaptConfig
    from socketedge.adapt.run import adapt
    from socketedge.evaluate import evaluate

    work, data, src = args.workdir, args.workdir / "data", args.workdir / "source.ckpt"
    if not src.exists() or not (data / "eval").is_dir():
        raise SystemExit(f"{work} is not a finished demo workdir (run `socketedge demo --workdir {work}` first)")
    out_root = work / "ablation"
    console = Console()
    rows = {"unadapted": {"accuracy": evaluate([src], data / "eval", "depth", show_progress=False)["accuracy"]}}
    for text in args.variants.split(";"):
        method, options = parse_variant(text)
        out = out_root / text.replace(":", "_").replace(",", "_").replace("=", "")
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        adapt(AdaptConfig(sources=[src], target=data / "target", ti=data / "ti", out=out, method=method,
                          epochs=args.epochs, seed=args.seed, device=args.device, show_progress=False, **options))
        acc = evaluate([out], data / "eval", "depth", show_progress=False)["accuracy"]
        rows[text] = {"accuracy": acc, "seconds": time.perf_counter() - t0}
        console.print(f"{text}: {acc:.1f}%")
    n = len(json.loads((data / "synth.json").read_text())["task_classes"])
    table = Table(title=f"{work}: accuracy on held-out depth, {args.epochs} adaptation epochs, seed {args.seed} "
                        f"(chance {100 / n:.1f}%)")
    table.add_column("variant")
    table.add_column("accuracy %", justify="right")
    table.add_column("s", justify="right")
    for name, r in rows.items():
        table.add_row(name, f"{r['accuracy']:.1f}", f"{r['seconds']:.0f}" if "seconds" in r else "")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
