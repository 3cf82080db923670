"""`socketedge import {sunrgbd|rgbnir|diml} ROOT --out DIR`: public datasets as released → source / target / TI
folders every other command reads, plus import.json. Prints the derived class split with counts per domain."""

from __future__ import annotations

from pathlib import Path

import typer

ORDER = 15

import_app = typer.Typer(
    name="import",
    help="Import a public dataset as released (SUN RGB-D, RGB-NIR Scene, DIML) into source / target / TI folders.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

_OUT = typer.Option(..., "--out", help="Directory to create (source/, target/ and ti/ folders + import.json).")
_OVERWRITE = typer.Option(False, "--overwrite", help="Replace an earlier import in --out.")
_WORKERS = typer.Option(None, min=1, help="Parallel file conversions (default: CPU count, at most 8).")
_TASK = typer.Option(None, "--task-classes", help="Comma-separated task-relevant classes (overrides the rule).")
_TI = typer.Option(None, "--ti-classes", help="Comma-separated task-irrelevant classes.")
_SEED = typer.Option(0, help="Seed that draws --num-task task classes when no class is named.")


def _run(name: str, root: Path, out: Path, overwrite: bool, workers: int | None, **options) -> None:
    from socketedge.data.importers import import_dataset
    from socketedge.data.importers.base import parse_names

    for key in ("task_classes", "ti_classes", "sensors", "splits"):
        if key in options:
            options[key] = parse_names(options[key])
    report = import_dataset(name, root, out, overwrite=overwrite, workers=workers, **options)
    _print_report(report)


def _print_report(report) -> None:
    from rich.table import Table

    from socketedge.utils.progress import console

    domains = list(report.counts)
    console.print(f"[bold]{report.dataset}[/]: {len(report.task_classes)} task / {len(report.ti_classes)} TI "
                  f"classes (RGB → {report.modality}), pairs per domain:", highlight=False)
    table = Table()
    table.add_column("class")
    table.add_column("role")
    for d in domains:
        table.add_column(d, justify="right")
    table.add_column("total", justify="right")
    for role, classes in (("task", report.task_classes), ("TI", report.ti_classes)):
        for c in classes:
            counts = [report.counts[d].get(c, 0) for d in domains]
            table.add_row(c, role, *[str(n) for n in counts], str(sum(counts)))
    console.print(table)
    console.print(f"split: {report.rule}", highlight=False)
    if report.depth_scale:
        scales = ", ".join(f"{d} {s:g}" for d, s in report.depth_scale.items())
        console.print(f"depth scale (metres per unit): {scales}", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    written = ", ".join(f"{k} {v}" for k, v in sorted(report.written.items()))
    console.print(f"[green]wrote[/] {report.out} ({written}) and {report.out / 'import.json'}", highlight=False)
    d, out = domains[0], report.out
    target = out / d / "target" / report.modality
    ti = f" --ti {out / 'ti'}" if report.written.get("ti") else ""
    console.print(f"next: socketedge train-source --data {out / d / 'source'} --out {d}.ckpt\n"
                  f"      socketedge adapt --source {d}.ckpt --target {target}{ti} --out {d}-adapted\n"
                  f"      socketedge eval {d}-adapted --data {target}", highlight=False, soft_wrap=True)


@import_app.command("sunrgbd")
def sunrgbd_cmd(
    root: Path = typer.Argument(..., help="The SUNRGBD/ folder of the official release (kv1/ kv2/ realsense/ xtion/)."),
    out: Path = _OUT,
    task_classes: str = _TASK,
    min_per_sensor: int = typer.Option(1, min=1, help="A class is common when every sensor has this many samples."),
    depth_source: str = typer.Option("depth", help="depth (raw sensor depth) | bfx (the refined depth_bfx/)."),
    sensors: str = typer.Option(None, help="Comma-separated sensors to import (default: kv1,kv2,realsense,xtion)."),
    overwrite: bool = _OVERWRITE,
    workers: int = _WORKERS,
) -> None:
    """SUN RGB-D: the scene classes common to all sensors are the task, the rest pooled TI pairs."""
    _run("sunrgbd", root, out, overwrite, workers, task_classes=task_classes, min_per_sensor=min_per_sensor,
         depth_source=depth_source, sensors=sensors)


@import_app.command("rgbnir")
def rgbnir_cmd(
    root: Path = typer.Argument(..., help="Folder holding the category folders (country/, field/, …)."),
    out: Path = _OUT,
    task_classes: str = _TASK,
    ti_classes: str = _TI,
    num_task: int = typer.Option(6, min=2, help="Task classes to draw when none are named (the paper: 6 of 9)."),
    seed: int = _SEED,
    overwrite: bool = _OVERWRITE,
    workers: int = _WORKERS,
) -> None:
    """EPFL RGB-NIR Scene: NNNN_rgb / NNNN_nir pairs; task/TI split by name or by seed."""
    _run("rgbnir", root, out, overwrite, workers, task_classes=task_classes, ti_classes=ti_classes,
         num_task=num_task, seed=seed)


@import_app.command("diml")
def diml_cmd(
    root: Path = typer.Argument(..., help="Root of the DIML sample release (holding indoor/)."),
    out: Path = _OUT,
    task_classes: str = _TASK,
    ti_classes: str = _TI,
    num_task: int = typer.Option(6, min=2, help="Task classes to draw when none are named (the paper: 6)."),
    seed: int = _SEED,
    splits: str = typer.Option(None, help="Comma-separated release splits to import (default: train,test)."),
    quality: str = typer.Option("LR", help="LR (512 px wide) | HR (1344 px wide) images of the release."),
    depth_folder: str = typer.Option("depth_filled", help="Depth subfolder of each category folder."),
    overwrite: bool = _OVERWRITE,
    workers: int = _WORKERS,
) -> None:
    """DIML/CVL RGB-D sample (indoor): numbered scene folders become classes; task/TI split by name or by seed."""
    _run("diml", root, out, overwrite, workers, task_classes=task_classes, ti_classes=ti_classes,
         num_task=num_task, seed=seed, splits=splits, quality=quality, depth_folder=depth_folder)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")
