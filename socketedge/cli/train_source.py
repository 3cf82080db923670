"""`socketedge train-source`: train a source classifier (RGB by default, or another modality, recorded in the
checkpoint) on labeled images in class folders."""

from __future__ import annotations

from pathlib import Path

import typer

ORDER = 20


def register(app: typer.Typer) -> None:
    @app.command("train-source")
    def train_source_cmd(
        data: Path = typer.Option(..., help="Labeled images in class folders: DATA/<class>/*.png"),
        modality: str = typer.Option("rgb", help="Modality of the images: rgb | nir | thermal | depth (recorded in "
                                     "the checkpoint; adapt then transfers to another one)."),
        arch: str = typer.Option("resnet50", help="Backbone name (see `socketedge doctor` / README for the list)."),
        out: Path = typer.Option(..., help="Checkpoint to write (safetensors + metadata), e.g. src.ckpt"),
        pretrained: bool = typer.Option(False, "--pretrained", help="Start from ImageNet weights."),
        epochs: int = typer.Option(20, min=1, help="Epochs; a small set gets more, to reach --min-steps."),
        batch_size: int = typer.Option(64, min=2, help="Largest batch; a small set uses one that gives an epoch "
                                                        "≥ 4 steps (not below 8)."),
        min_steps: int = typer.Option(500, min=0, help="Run at least this many SGD steps (0: just --epochs)."),
        lr: float = typer.Option(1e-2, help="Bottleneck/classifier learning rate."),
        backbone_lr_mult: float = typer.Option(None, help="Backbone rate ÷ lr (default 0.1 with --pretrained, else 1)."),
        input_size: int = typer.Option(None, help="Input size in pixels (default: the architecture's)."),
        val_fraction: float = typer.Option(0.1, help="Share of images held out for validation."),
        select: str = typer.Option("auto", help="Weights to keep: auto (best validation epoch if ≥ 100 "
                                                "validation images, else final) | best | final."),
        seed: int = typer.Option(0),
        device: str = typer.Option("auto", help="auto | cpu | cuda"),
        memory_budget: float = typer.Option(None, min=0, help="GiB of decoded images held in memory (default 1); "
                                            "larger sets are decoded once into the disk cache and read from "
                                            "there. 0: always the disk cache. Never changes the result."),
        cache_dir: Path = typer.Option(None, help="Disk cache of decoded images (default $SOCKETEDGE_CACHE_DIR, "
                                       "else ~/.cache/socketedge/frames)."),
    ) -> None:
        """Train a source model (SHOT/SOCKET source recipe); keep the final or the best validation epoch."""
        from socketedge.models.train import TrainSourceConfig, train_source
        from socketedge.utils.progress import console

        cfg = TrainSourceConfig(data=data, out=out, arch=arch, modality=modality, pretrained=pretrained,
                                epochs=epochs,
                                batch_size=batch_size, min_steps=min_steps, lr=lr,
                                backbone_lr_mult=backbone_lr_mult, input_size=input_size,
                                val_fraction=val_fraction, select=select, seed=seed, device=device,
                                memory_budget=memory_budget, cache_dir=cache_dir)
        path, result = train_source(cfg)
        s, best, final = result["schedule"], result["best"], result["final"]
        console.print(f"[green]wrote[/] {path}: {len(result['class_names'])} classes, {result['num_train']} train / "
                      f"{result['num_val']} val images; batch {s['batch_size']} × {s['epochs']} epochs = "
                      f"{s['steps']} steps; kept the {result['kept']} weights (val accuracy final "
                      f"{final['val_accuracy']:.1f}%, best {best['val_accuracy']:.1f}% at epoch {best['epoch']})")
