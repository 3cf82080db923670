"""`socketedge synth`: write a synthetic RGB-D dataset (source RGB, TI pairs, target depth, eval) — no downloads."""

from __future__ import annotations

from pathlib import Path

import typer

ORDER = 5


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def register(app: typer.Typer) -> None:
    @app.command()
    def synth(
        out: Path = typer.Option(None, "--out", "-o", help="Dataset directory to create (required)."),
        task_classes: str = typer.Option(None, "--task-classes", help="Comma-separated task shapes "
                                         "[default: sphere,cube,cylinder,cone,torus,pyramid]."),
        ti_classes: str = typer.Option(None, "--ti-classes", help="Comma-separated task-irrelevant shapes, "
                                       "disjoint from the task ones [default: capsule,ellipsoid,prism,ring,"
                                       "octahedron,hexprism]."),
        per_class: int = typer.Option(100, "--per-class", "-n", min=1, help="Source RGB images per task class; "
                                      "also target and TI images per class; eval gets half."),
        target_per_class: int = typer.Option(None, "--target-per-class", min=1, help="Unlabeled target depth "
                                             "images per task class [default: --per-class]."),
        ti_per_class: int = typer.Option(None, "--ti-per-class", min=1, help="TI pairs per TI class "
                                         "[default: --per-class]."),
        eval_per_class: int = typer.Option(None, "--eval-per-class", min=1, help="Held-out scenes per task "
                                           "class [default: half of --per-class]."),
        size: int = typer.Option(96, "--size", "-s", min=16, max=1024, help="Image size in pixels (square)."),
        seed: int = typer.Option(0, "--seed", help="Random seed; the same seed writes the same images."),
        workers: int = typer.Option(None, "--workers", "-j", min=1, help="Render threads [default: CPU count]."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing synthetic dataset at --out."),
        list_shapes: bool = typer.Option(False, "--list-shapes", help="Print the shape catalogue and exit."),
    ) -> None:
        """Render one-object RGB-D scenes (colour + stereo-like 16-bit depth) in the layouts real data uses."""
        from rich.table import Table

        from socketedge.synth.dataset import make_config, synthesize
        from socketedge.synth.shapes import CATALOGUE
        from socketedge.utils.progress import console

        if list_shapes:
            typer.echo(", ".join(CATALOGUE))
            return
        if out is None:
            from socketedge.errors import ConfigError

            raise ConfigError("missing --out DIR: the directory to write the synthetic dataset to")
        cfg = make_config(task_classes=_names(task_classes), ti_classes=_names(ti_classes), per_class=per_class,
                          target_per_class=target_per_class, ti_per_class=ti_per_class,
                          eval_per_class=eval_per_class, size=size, seed=seed)
        result = synthesize(out, config=cfg, overwrite=overwrite, workers=workers)
        table = Table(title=f"synthetic dataset {result.out}")
        for col in ("split", "folder", "images", "classes"):
            table.add_column(col)
        rows = [("source", "source/<class>/ (rgb)", cfg.task_classes),
                ("ti", "ti/{rgb,depth}/<class>/", cfg.ti_classes),
                ("target", "target/depth/ (unlabeled)", cfg.task_classes),
                ("eval", "eval/{rgb,depth}/<class>/", cfg.task_classes)]
        for split, folder, classes in rows:
            table.add_row(split, folder, str(result.counts[split]), ", ".join(classes))
        console.print(table)
        console.print(f"{result.images} images at {cfg.size}px in {result.seconds:.1f} s "
                      f"({result.images / max(result.seconds, 1e-9):.0f} images/s)")
        typer.echo(str(result.out))
