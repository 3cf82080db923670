"""`socketedge sessions info|validate DIR`: what a capture session holds, and an integrity check."""

from __future__ import annotations

import json
from pathlib import Path

import typer

ORDER = 11

sessions_app = typer.Typer(help="Inspect and check capture sessions.", no_args_is_help=True)


@sessions_app.command("info")
def info(root: Path = typer.Argument(..., help="Session directory."),
         json_out: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Sensor, calibration, modalities, captures and frame counts per label."""
    from rich.table import Table

    from socketedge.data.session_check import session_info
    from socketedge.utils.progress import console

    report = session_info(root)
    if json_out:
        typer.echo(json.dumps(report, indent=2))
        return
    console.print(f"[bold]{report['root']}[/]: {report['frames']} frames, {', '.join(report['modalities'])}; "
                  f"{report['sensor']} serial {report['serial'] or '-'} firmware {report['firmware'] or '-'}, "
                  f"depth scale {report['depth_scale']}", highlight=False)
    for key in ("color_intrinsics", "depth_intrinsics", "depth_to_color"):
        if report.get(key):
            console.print(f"  {key}: {report[key]}", highlight=False)
    table = Table(show_header=True)
    table.add_column("label")
    for m in report["modalities"]:
        table.add_column(m, justify="right")
    for label, counts in report["per_label_modality"].items():
        table.add_row(label, *[str(counts.get(m, 0)) for m in report["modalities"]])
    console.print(table)
    for c in report["captures"]:
        console.print(f"  capture {c['id']}: {c['source']} mode={c['mode']} label={c['label']} "
                      f"{c['started']} → {c['ended'] or 'interrupted'} ({c['stopped_by'] or '-'})", highlight=False)


@sessions_app.command("validate")
def validate(root: Path = typer.Argument(..., help="Session directory."),
             no_decode: bool = typer.Option(False, "--no-decode", help="Only check that files exist.")) -> None:
    """Every frame record readable, every file present and decodable, every pair complete."""
    from socketedge.data.session_check import validate_session
    from socketedge.errors import DataError
    from socketedge.utils.progress import console, make_progress

    with make_progress(transient=True) as progress:
        report = validate_session(root, decode=not no_decode, progress=progress)
    for w in report.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    for e in report.errors:
        console.print(f"[red]problem:[/] {e}", highlight=False)
    counts = ", ".join(f"{k}={v}" for k, v in report.per_label.items()) or "none"
    if not report.ok:
        raise DataError(f"session {root} has {len(report.errors)} problem(s), first: {report.errors[0]}")
    typer.echo(f"session {root} is valid: {report.frames} frames ({', '.join(report.modalities)}); labels: {counts}")


def register(app: typer.Typer) -> None:
    app.add_typer(sessions_app, name="sessions")
