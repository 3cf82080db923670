"""`socketedge run`: classify a live camera (or any frame source) with an exported model."""

from __future__ import annotations

from pathlib import Path

import typer

ORDER = 50


def print_summary(summary, console) -> None:
    from rich.table import Table

    table = Table(title=f"run summary ({summary.ended_by.replace('_', ' ')})", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("frames classified", str(summary.frames))
    table.add_row("frames captured / dropped", f"{summary.captured} / {summary.drops}")
    table.add_row("camera lost / reopened", f"{summary.losses} / {summary.reconnects}")
    table.add_row("fps", f"{summary.fps:.1f} over {summary.elapsed_s:.1f} s")
    lat = summary.latency_ms
    table.add_row("latency p50/p95/p99", f"{lat['p50']:.2f} / {lat['p95']:.2f} / {lat['p99']:.2f} ms")
    inf = summary.infer_ms
    table.add_row("model p50/p95/p99", f"{inf['p50']:.2f} / {inf['p95']:.2f} / {inf['p99']:.2f} ms")
    table.add_row("classes", "  ".join(f"{k}: {v}" for k, v in summary.histogram.items()) or "-")
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        model: Path = typer.Argument(..., help="Exported .onnx, TensorRT .engine (with its .json card), or an "
                                               "adapted bundle directory / .ckpt (torch backend, for debugging)."),
        uri: str | None = typer.Argument(None, metavar="[URI]", show_default=False,
                                         help="Camera URI for --camera: realsense://[SERIAL], k4a://[INDEX]."),
        camera: bool = typer.Option(False, "--camera", help="Classify a live camera: the URI argument, or the "
                                                            "first RealSense found."),
        source: str | None = typer.Option(None, "--source", help="Any frame source: file://REC.db3, "
                                                                 "session://DIR, folder://DIR, synthetic://…"),
        backend: str = typer.Option("auto", "--backend", help="auto (from the file type), onnxruntime, "
                                                              "tensorrt or torch."),
        provider: str = typer.Option("auto", "--provider", help="auto | cpu | cuda | tensorrt (onnxruntime)."),
        require_gpu: bool = typer.Option(False, "--require-gpu", help="Fail unless inference really runs on "
                                                                      "a GPU."),
        threads: int | None = typer.Option(None, "--threads", help="CPU threads (default: the free cores)."),
        smooth: str = typer.Option("none", "--smooth", help="Temporal smoothing: none | avg | hysteresis."),
        window: int = typer.Option(5, "--window", help="Frames the smoothing looks at."),
        json_out: str | None = typer.Option(None, "--json", metavar="FILE|-",
                                            help="JSON lines per prediction to FILE, or - for stdout."),
        show: bool | None = typer.Option(None, "--show/--headless", help="Overlay window (default: shown when "
                                                                         "a display is available)."),
        video: Path | None = typer.Option(None, "--video", help="Write the annotated frames to this video."),
        max_frames: int | None = typer.Option(None, "--max-frames", help="Stop after N predictions."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No console line per prediction."),
        allow_failed_parity: bool = typer.Option(False, "--allow-failed-parity", help="Run a model whose export "
                                                 "failed its parity check (refused otherwise), with a warning."),
    ) -> None:
        """Grab → infer → smooth → print / JSON / window / video, until the recording ends or Ctrl-C."""
        from rich.markup import escape

        from socketedge.errors import ConfigError
        from socketedge.runtime.loop import DEFAULT_CAMERA, RunConfig
        from socketedge.runtime.loop import run as run_loop
        from socketedge.utils.progress import console

        if source and (camera or uri):
            raise ConfigError("give either --camera [URI] or --source URI, not both")
        config = RunConfig(model=model, source=source or uri or DEFAULT_CAMERA, backend=backend,
                           provider=provider, require_gpu=require_gpu, threads=threads, smooth=smooth,
                           window=window, json_out=json_out, console=not quiet, show=show, video=video,
                           max_frames=max_frames, allow_failed_parity=allow_failed_parity)

        def on_backend(b) -> None:
            classes = ", ".join(b.class_names)
            console.print(f"[bold]{escape(model.name)}[/]: {escape(b.describe())}  classes: {escape(classes)}",
                          highlight=False)
            for warning in getattr(b, "warnings", []):
                console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)

        try:
            summary = run_loop(config, on_event=lambda m: console.print(f"[yellow]{escape(m)}[/]", highlight=False),
                               on_backend=on_backend)
        except KeyboardInterrupt:  # Ctrl-C while the model or the camera was still opening
            console.print("interrupted before the first frame")
            raise typer.Exit(130) from None
        print_summary(summary, console)
