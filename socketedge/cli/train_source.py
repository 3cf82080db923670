"""`socketedge train-source`: train an RGB source classifier on labeled images in class folders."""

from __future__ import annotations

from pathlib import Path

import typer

ORDER = 20


def register(app: typer.Typer) -> None:
    @app.command("train-source")
    def train_source_cmd(
        data: Path = typer.Option(..., help="Labeled images in class folders: DATA/<class>/*.png"),
        arch: str = typer.Option("resnet50", help="Backbone name (see `socketedge doctor` / README for the list)."),
        out: Path = typer.Option(..., help="Checkpoint to write (safetensors + metadata), e.g. src.ckpt"),
        pretrained: bool = typer.Option(False, "--pretrained", help="Start from ImageNet weights."),
        epochs: int = typer.Option(20, min=1),
        batch_size: int = typer.Option(64, min=2),
        lr: float = typer.Option(1e-2, help="Bottleneck/classifier learning rate."),
        backbone_lr_mult: float = typer.Option(None, help="Backbone rate ÷ lr (default 0.1 with --pretrained, else 1)."),
        input_size: int = typer.Option(None, help="Input size in pixels (default: the architecture's)."),
        val_fraction: float = typer.Option(0.1, help="Share of images held out for choosing the best epoch."),
        seed: int = typer.Option(0),
        device: str = typer.Option("auto", help="auto | cpu | cuda"),
    ) -> None:
        """Train an RGB source model (SHOT/SOCKET source recipe) and keep the best validation checkpoint."""
        from socketedge.models.train import TrainSourceConfig, train_source
        from socketedge.utils.progress import console

        cfg = TrainSourceConfig(data=data, out=out, arch=arch, pretrained=pretrained, epochs=epochs,
                                batch_size=batch_size, lr=lr, backbone_lr_mult=backbone_lr_mult,
                                input_size=input_size, val_fraction=val_fraction,
                                seed=seed, device=device)
        path, result = train_source(cfg)
        best = result["best"]
        console.print(f"[green]wrote[/] {path}: {len(result['class_names'])} classes, {result['num_train']} train / "
                      f"{result['num_val']} val images, best val accuracy {best['val_accuracy']:.1f}% "
                      f"(epoch {best['epoch']})")
