"""`socketedge import-source`: wrap an ordinary torchvision-style classifier as a source checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

ORDER = 25


def register(app: typer.Typer) -> None:
    @app.command("import-source")
    def import_source_cmd(
        arch: str = typer.Option(..., help="Architecture of the weights, e.g. resnet50."),
        weights: Path = typer.Option(..., help="A state dict: .pth/.pt (loaded with weights_only) or .safetensors"),
        classes: Path = typer.Option(..., help="Text file: one class name per line, in output order."),
        out: Path = typer.Option(..., help="Checkpoint to write, e.g. src.ckpt"),
        input_size: int = typer.Option(None, help="Input size the model was trained at (default: arch's)."),
    ) -> None:
        """Encoder = everything before the last linear layer; classifier = that layer."""
        from socketedge.models.importing import import_source
        from socketedge.utils.progress import console

        path, model = import_source(arch, weights, classes, out, input_size)
        console.print(f"[green]wrote[/] {path}: {arch}, {model.meta.num_classes} classes, "
                      f"encoder output {model.meta.feature_dim}")
