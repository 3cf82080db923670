"""The modality gap on real visible/thermal pairs (RoadScene), before and after SHOT and SOCKET.

Source: EfficientNet-Lite0 with its real ImageNet classifier (the `pretrained` extra), wrapped like a user's own
model (`import-source`). Pairs are split once by a seeded shuffle: 70% are TI pairs for SOCKET (their thermal
images are also the unlabeled target set for both methods), 30% are held out and only measured. Reports the
held-out mean feature distance (RGB through the frozen source encoder vs thermal through the adapted encoder),
cosine similarity and linear CKA, before and after, for both methods, and a `statistics only` row: the
running statistics re-estimated on the thermal frames, no training, which separates what the statistics do to
the gap from what training does. Which statistics each method went on with at the start and the end
(`--recalibrate-bn`, default auto: SOCKET keeps whichever make the TI pairs' thermal features more like ψ;
SHOT, without pairs, re-estimates) is printed under the table. RoadScene has no labels, so no accuracy is
reported.

Source BatchNorm statistics (--source-bn): SOCKET assumes an RGB model trained in the target's domain (the
paper's sources are trained on the same dataset's RGB images), so its BN running statistics describe that
domain. ImageNet's statistics do not describe road scenes: the RGB features of the held-out pairs alone move by
about as much as their own norm between ImageNet and road-scene batch statistics, and any adaptation in train
mode replaces the statistics, which the distance then counts as gap. `ti-rgb` (default) re-estimates the
running statistics on the TI pairs' RGB images (never the held-out ones) before adaptation, standing in for a
model trained on road scenes; `imagenet` keeps them as shipped.

    python benchmarks/roadscene_gap.py [--root ../shared/data/roadscene_rgbt] [--epochs 15] [--size 128]
        [--source-bn ti-rgb|imagenet]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src.resolve(), dst)


def split(root: Path, work: Path, held_fraction: float, seed: int) -> tuple[int, int]:
    names = sorted(p.name for p in (root / "rgb").iterdir() if (root / "thermal" / p.name).exists())
    random.Random(seed).shuffle(names)
    n_held = round(len(names) * held_fraction)
    held, train = names[:n_held], names[n_held:]
    for name in train:
        _link(root / "rgb" / name, work / "ti" / "rgb" / name)
        _link(root / "thermal" / name, work / "ti" / "thermal" / name)
        _link(root / "thermal" / name, work / "target" / "thermal" / name)
    for name in held:
        _link(root / "rgb" / name, work / "gap" / "rgb" / name)
        _link(root / "thermal" / name, work / "gap" / "thermal" / name)
    return len(train), len(held)


def recalibrate_bn(model, pairs: Path, size: int, batch_size: int = 32) -> None:
    """Re-estimate every BatchNorm layer's running statistics as the plain average over the RGB images of the
    paired folder ``pairs``."""
    import torch

    from socketedge.data.cache import decode_set
    from socketedge.data.folders import paired_folder
    from socketedge.data.preprocess import Preprocess, preprocessing_for

    raw = decode_set(paired_folder(pairs, "rgb", "thermal").a, size, "decoding TI rgb for BN statistics", False).raw
    pre = Preprocess(preprocessing_for(model.meta, "rgb"))
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for i in range(0, len(raw), batch_size):
            model(pre(raw[i:i + batch_size], sized=True))  # decoded at size: not resized twice
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.eval()


def imagenet_source(path: Path, size: int, bn_pairs: Path | None = None) -> Path:
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from socketedge.models.checkpoint import save_source
    from socketedge.models.efficientnet_lite import load_imagenet
    from socketedge.models.source_model import wrap_torchvision_classifier

    # ImageNet has two "crane" and two "maillot" entries; class names must be unique
    names = [f"{i:03d}_{n}" for i, n in enumerate(_IMAGENET_CATEGORIES)]
    model = wrap_torchvision_classifier("efficientnet_lite0", load_imagenet("lite0").state_dict(), names,
                                        input_size=size)
    if bn_pairs is not None:
        recalibrate_bn(model, bn_pairs, size)
    return save_source(model, path)


def statistics_only(src: Path, work: Path) -> dict:
    """The gap after adaptation's start alone: BatchNorm running statistics re-estimated on the thermal target
    frames, no training step. Separates what the statistics do to the distance from what training does."""
    from socketedge.adapt.config import AdaptConfig
    from socketedge.adapt.run import Adapter

    adapter = Adapter(AdaptConfig(sources=[src], target=work / "target" / "thermal", out=work / "statistics_only",
                                  gap_pairs=work / "gap", method="shot", epochs=1, show_progress=False))
    before = adapter.gap(adapted=False)["mixed"]
    adapter.recalibrate_bn()
    for m in adapter.members:
        m.eval()
    return {"before": before, "after": adapter.gap(adapted=True)["mixed"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "roadscene_rgbt")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--source-bn", choices=("ti-rgb", "imagenet"), default="ti-rgb")
    p.add_argument("--held", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lambda-ti", type=float, default=0.3)
    p.add_argument("--lambda-d", type=float, default=0.3)
    p.add_argument("--device", default="auto")
    p.add_argument("--methods", default="shot,socket")
    p.add_argument("--recalibrate-bn", choices=("auto", "always", "never"), default="auto",
                   help="adapt's --recalibrate-bn for both methods")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    from rich.console import Console
    from rich.table import Table

    from socketedge.adapt.config import AdaptConfig
    from socketedge.adapt.run import adapt

    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        n_train, n_held = split(args.root, work, args.held, args.seed)
        console.print(f"RoadScene: {n_train} TI/target pairs, {n_held} held-out pairs")
        src = imagenet_source(work / "lite0_imagenet.ckpt", args.size,
                              work / "ti" if args.source_bn == "ti-rgb" else None)
        rows = {}
        rows["statistics only"] = statistics_only(src, work)
        for method in args.methods.split(","):
            cfg = AdaptConfig(sources=[src], target=work / "target" / "thermal", out=work / f"bundle_{method}",
                              ti=work / "ti" if method == "socket" else None, gap_pairs=work / "gap",
                              method=method, epochs=args.epochs, seed=args.seed, device=args.device,
                              lambda_ti=args.lambda_ti, lambda_d=args.lambda_d,
                              recalibrate_bn=args.recalibrate_bn)
            metrics = adapt(cfg).metrics
            gap = metrics["gap"]
            rows[method] = {"before": gap["before"]["mixed"], "after": gap["after"]["mixed"],
                            "bn_statistics": metrics.get("bn_statistics", {})}
        table = Table(title=f"held-out RoadScene pairs (n={n_held}): RGB (frozen source) vs thermal features, "
                            f"efficientnet_lite0 ImageNet @ {args.size}px, source BN {args.source_bn}, "
                            f"{args.epochs} epochs, λ_TI {args.lambda_ti}, λ_d {args.lambda_d}")
        for col in ("method", "distance before", "distance after", "change", "cosine before", "cosine after",
                    "CKA before", "CKA after"):
            table.add_column(col, justify="right")
        for method, r in rows.items():
            b, a = r["before"], r["after"]
            table.add_row(method, f"{b['distance']:.3f}", f"{a['distance']:.3f}",
                          f"{100 * (a['distance'] / b['distance'] - 1):+.1f}%", f"{b['cosine']:.3f}",
                          f"{a['cosine']:.3f}", f"{b['cka']:.3f}", f"{a['cka']:.3f}")
        console.print(table)
        for method, bn in ((m, r["bn_statistics"]) for m, r in rows.items() if "bn_statistics" in r):
            console.print(f"{method} BatchNorm statistics (--recalibrate-bn {args.recalibrate_bn}): " + "; ".join(
                f"{when} {c['chosen']}" + (" (CKA with ψ on the TI pairs: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in c["ti_cka"].items()) + ")" if "ti_cka" in c else "")
                for when, c in bn.items()), highlight=False)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
