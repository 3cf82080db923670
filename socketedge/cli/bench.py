"""`socketedge bench`: latency / throughput per backend, precision and batch size, plus the live loop overhead."""

from __future__ import annotations

import json
from pathlib import Path

import typer

ORDER = 51


def _ints(text: str, option: str) -> list[int]:
    from socketedge.errors import ConfigError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected comma-separated integers, e.g. 1,8") from None


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        models: list[Path] = typer.Argument(..., help="One or more models (.onnx of several precisions, "
                                                      ".engine, bundle) to compare side by side."),
        backend: str = typer.Option("auto", "--backend", help="Comma-separated: onnxruntime-cpu, "
                                                              "onnxruntime-cuda, onnxruntime-tensorrt, tensorrt, "
                                                              "torch. auto = every one this machine can run."),
        batch: str = typer.Option("1,8", "--batch", help="Comma-separated batch sizes."),
        threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: the free cores)."),
        shape: str = typer.Option("480x640", "--shape", help="Frame size HxW fed to the model."),
        iters: int = typer.Option(100, "--iters", help="Timed runs per row (after --warmup)."),
        warmup: int = typer.Option(10, "--warmup", help="Untimed runs first."),
        loop_frames: int = typer.Option(300, "--loop-frames", help="Frames through the live loop to measure "
                                                                   "its overhead; 0 skips it."),
        json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON."),
    ) -> None:
        """Median / p90 / p99 latency and frames/s per backend, precision and batch; loop overhead per frame."""
        from rich.markup import escape
        from rich.table import Table

        from socketedge.errors import ConfigError
        from socketedge.runtime.bench import BenchConfig
        from socketedge.runtime.bench import bench as run_bench
        from socketedge.utils.progress import console

        try:
            height, width = (int(v) for v in shape.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--shape {shape!r}: expected HxW, e.g. 480x640") from None
        if height < 1 or width < 1:
            raise ConfigError(f"--shape {shape!r}: height and width must be positive, e.g. 480x640")
        if json_out is not None:
            from socketedge.utils.outputs import check_output_file

            check_output_file(json_out, "--json", "bench.json")
        config = BenchConfig(models=models, backends=[b.strip() for b in backend.split(",") if b.strip()],
                             batches=_ints(batch, "--batch"), threads=threads, height=height, width=width,
                             iters=iters, warmup=warmup, loop_frames=loop_frames)
        report = run_bench(config)
        table = Table(title=f"socketedge bench ({height}x{width} frames, {warmup} warm-up, {iters} timed)")
        for col in ("model", "backend", "providers", "precision", "batch", "threads", "median ms", "p90 ms",
                    "p99 ms", "frames/s"):
            table.add_column(col, justify="right" if col.endswith(("ms", "/s", "batch", "threads")) else "left")
        for r in report.rows:
            table.add_row(r.model, r.backend, r.providers, r.precision, str(r.batch), str(r.threads or "-"),
                          f"{r.median_ms:.3f}", f"{r.p90_ms:.3f}", f"{r.p99_ms:.3f}", f"{r.frames_per_s:.1f}")
        console.print(table)
        if report.overhead:
            loop = Table(title="live loop overhead per frame (batch 1, no sinks)")
            for col in ("model", "backend", "frames", "loop ms", "model ms", "overhead ms", "overhead %",
                        "in-loop model ms", "in-loop overhead ms", "in-loop %", "own p50 ms", "own/model %"):
                loop.add_column(col)
            for o in report.overhead:
                loop.add_row(o.model, o.backend, str(o.frames), f"{o.loop_ms:.3f}", f"{o.model_ms:.3f}",
                             f"{o.overhead_ms:.3f}", f"{o.overhead_pct:.1f}", f"{o.in_loop_model_ms:.3f}",
                             f"{o.in_loop_overhead_ms:.3f}", f"{o.in_loop_overhead_pct:.1f}", f"{o.own_p50_ms:.3f}",
                             f"{o.own_pct:.1f}")
            console.print(loop)
        if report.precision_choices:
            from socketedge.runtime.bench import choice_table

            for name, record in report.precision_choices.items():
                console.print(choice_table(record, f"{name}: precision chosen at export (--precision auto, "
                                                   f"{record['backend']})"))
        for line in report.skipped:
            console.print(f"[yellow]skipped[/] {escape(line)}", highlight=False)
        if json_out is not None:
            from socketedge.utils.atomic import write_json_atomic

            write_json_atomic(json_out, json.dumps(report.to_dict(), indent=2))
