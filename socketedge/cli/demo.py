"""`socketedge demo`: the whole pipeline on synthetic RGB-D data in a few minutes on CPU."""

from __future__ import annotations

from pathlib import Path

import typer

ORDER = 80


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo_cmd(
        workdir: Path = typer.Option(Path("demo-workdir"), help="Where data, models, plots and the ONNX go."),
        quick: bool = typer.Option(False, "--quick", help="Smaller data and model: under a minute."),
        fresh: bool = typer.Option(False, "--fresh", help="Redo every step instead of reusing finished ones."),
        frames: int = typer.Option(None, help="Live frames on the virtual camera (default 300, quick 100)."),
        seed: int = typer.Option(0),
        device: str = typer.Option("auto", help="auto | cpu | cuda"),
    ) -> None:
        """Synthetic data → RGB source → SHOT and SOCKET → ONNX → live classifier, with one results table."""
        from socketedge.demo import DemoConfig, print_table, run_demo

        result = run_demo(DemoConfig(workdir=workdir, quick=quick, fresh=fresh, frames=frames, seed=seed,
                                     device=device))
        print_table(result)
