"""`socketedge doctor`: what is installed, which extras work, which accelerators and cameras are visible."""

from __future__ import annotations

import json

import typer

ORDER = 90


def register(app: typer.Typer) -> None:
    @app.command()
    def doctor(json_out: bool = typer.Option(False, "--json", help="Print the report as one JSON object.")) -> None:
        """Versions, optional extras, CUDA, onnxruntime providers and RealSense devices."""
        from rich.table import Table

        from socketedge.doctor import collect
        from socketedge.utils.progress import console

        report = collect()
        if json_out:
            typer.echo(json.dumps(report, indent=2))
            return
        table = Table(title="socketedge doctor", show_header=True)
        table.add_column("check")
        table.add_column("result")
        for section, values in report.items():
            if isinstance(values, dict):
                for k, v in values.items():
                    table.add_row(f"{section}.{k}", str(v))
            else:
                table.add_row(section, str(values))
        console.print(table)
