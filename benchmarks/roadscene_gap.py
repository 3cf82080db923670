"""The modality gap on real visible/thermal pairs (RoadScene), before and after SHOT and SOCKET.

Source: EfficientNet-Lite0 with its real ImageNet classifier (the `pretrained` extra), wrapped like a user's own
model (`import-source`). Pairs are split once by a seeded shuffle: 70% are TI pairs for SOCKET (their thermal
images are also the unlabeled target set for both methods), 30% are held out and only measured. Reports the
held-out mean feature distance (RGB through the frozen source encoder vs thermal through the adapted encoder)
and linear CKA, before and after, for both methods. RoadScene has no labels, so no accuracy is reported.

    python benchmarks/roadscene_gap.py [--root ../shared/data/roadscene_rgbt] [--epochs 5] [--size 160]
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


def imagenet_source(path: Path, size: int) -> Path:
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from socketedge.models.checkpoint import save_source
    from socketedge.models.efficientnet_lite import load_imagenet
    from socketedge.models.source_model import wrap_torchvision_classifier

    # ImageNet has two "crane" and two "maillot" entries; class names must be unique
    names = [f"{i:03d}_{n}" for i, n in enumerate(_IMAGENET_CATEGORIES)]
    model = wrap_torchvision_classifier("efficientnet_lite0", load_imagenet("lite0").state_dict(), names,
                                        input_size=size)
    return save_source(model, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=REPO.parent / "shared" / "data" / "roadscene_rgbt")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--held", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lambda-ti", type=float, default=0.3)
    p.add_argument("--lambda-d", type=float, default=0.3)
    p.add_argument("--device", default="auto")
    p.add_argument("--methods", default="shot,socket")
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
        src = imagenet_source(work / "lite0_imagenet.ckpt", args.size)
        rows = {}
        for method in args.methods.split(","):
            cfg = AdaptConfig(sources=[src], target=work / "target" / "thermal", out=work / f"bundle_{method}",
                              ti=work / "ti" if method == "socket" else None, gap_pairs=work / "gap",
                              method=method, epochs=args.epochs, seed=args.seed, device=args.device,
                              lambda_ti=args.lambda_ti, lambda_d=args.lambda_d)
            gap = adapt(cfg).metrics["gap"]
            rows[method] = {"before": gap["before"]["mixed"], "after": gap["after"]["mixed"]}
        table = Table(title=f"held-out RoadScene pairs (n={n_held}): RGB (frozen source) vs thermal features, "
                            f"efficientnet_lite0 ImageNet @ {args.size}px, {args.epochs} epochs")
        for col in ("method", "distance before", "distance after", "change", "CKA before", "CKA after"):
            table.add_column(col, justify="right")
        for method, r in rows.items():
            b, a = r["before"], r["after"]
            table.add_row(method, f"{b['distance']:.3f}", f"{a['distance']:.3f}",
                          f"{100 * (a['distance'] / b['distance'] - 1):+.1f}%", f"{b['cka']:.3f}", f"{a['cka']:.3f}")
        console.print(table)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
