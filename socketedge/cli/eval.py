"""`socketedge eval`: accuracy of one model, an ensemble, or unadapted vs adapted side by side."""

from __future__ import annotations

import json
from pathlib import Path

import typer

ORDER = 35


def _range(value: str | None) -> tuple[float, float] | None:
    if not value:
        return None
    try:
        near, far = (float(v) for v in value.split(","))
    except ValueError:
        raise typer.BadParameter("expected NEAR,FAR in metres, e.g. 0.3,5") from None
    return near, far


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        models: list[Path] = typer.Argument(..., help="Source .ckpt files and/or adapted bundles."),
        data: Path = typer.Option(..., help="Labeled target data: DIR/<class>/*.png or a paired root."),
        modality: str = typer.Option(None, help="rgb | depth | nir | thermal (default: from the folder name)."),
        out: Path = typer.Option(Path("eval_out"), help="Where metrics.json, confusion.png, predictions go."),
        compare: bool = typer.Option(False, "--compare", help="Evaluate each model on its own, side by side."),
        json_out: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object on stdout."),
        depth_scale: float = typer.Option(None, help="Metres per depth unit (default 0.001)."),
        depth_range: str = typer.Option(None, help="Depth clip range NEAR,FAR in metres (default 0.3,5)."),
        batch_size: int = typer.Option(64, min=1),
        device: str = typer.Option("auto"),
    ) -> None:
        """Accuracy, per-class accuracy, confusion matrix. Several models = equal-weight ensemble."""
        from socketedge.evaluate import evaluate
        from socketedge.utils.progress import console

        rng = _range(depth_range)
        if compare:
            results = [evaluate([m], data, modality, out / f"{i}_{m.name}", device, batch_size, depth_scale, rng,
                                show_progress=not json_out) for i, m in enumerate(models)]
            if json_out:
                typer.echo(json.dumps({"compare": results}))
                return
            from rich.table import Table

            table = Table(title=f"accuracy on {data} ({results[0]['modality']})")
            table.add_column("class")
            for m in models:
                table.add_column(m.name, justify="right")
            for name in results[0]["class_names"]:
                if name in results[0]["per_class_accuracy"]:
                    table.add_row(name, *[f"{r['per_class_accuracy'][name]:.1f}" for r in results])
            table.add_row("[bold]overall", *[f"[bold]{r['accuracy']:.1f}" for r in results])
            console.print(table)
            return
        metrics = evaluate(models, data, modality, out, device, batch_size, depth_scale, rng,
                           show_progress=not json_out)
        if json_out:
            typer.echo(json.dumps(metrics))
            return
        from rich.table import Table

        table = Table(title=f"{' + '.join(m.name for m in models)} on {data} ({metrics['modality']}, n={metrics['n']})")
        table.add_column("class")
        table.add_column("accuracy %", justify="right")
        for name, acc in metrics["per_class_accuracy"].items():
            table.add_row(name, f"{acc:.1f}")
        table.add_row("[bold]overall", f"[bold]{metrics['accuracy']:.1f}")
        console.print(table)
        console.print(f"wrote {out}/metrics.json, confusion.png, predictions.jsonl")
