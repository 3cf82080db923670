"""`socketedge capture SOURCE --out DIR`: record a session from a camera, a recording or a session."""

from __future__ import annotations

from pathlib import Path

import typer

ORDER = 10


def register(app: typer.Typer) -> None:
    @app.command()
    def capture(
        source: str = typer.Argument(..., help="realsense://[SERIAL], k4a://[INDEX], file://REC.db3|.bag|.mkv, "
                                               "session://DIR, folder://DIR, synthetic://…"),
        out: Path = typer.Option(..., "--out", "-o", help="Session directory (created, or appended to)."),
        mode: str = typer.Option("paired", help="paired: colour + depth (task-irrelevant pairs); "
                                                "target: the target modality only."),
        label: str = typer.Option(None, help="Class of every frame of this run (capture class by class)."),
        frames: int = typer.Option(None, "--frames", "-n", min=1, help="Stop after N written frames."),
        duration: float = typer.Option(None, help="Stop after S seconds."),
        every: int = typer.Option(1, min=1, help="Keep every K-th frame."),
        preview: bool = typer.Option(False, "--preview", help="Show colour and depth in a window (q stops)."),
        record: Path = typer.Option(None, help="Also keep the SDK's raw recording (FILE.db3, RealSense only)."),
        profile: str = typer.Option(None, help="Camera profile from calibration/ (d415, d435, d455, l515, "
                                               "azure_kinect)."),
        modality: str = typer.Option(None, help="Target modality to keep (default depth)."),
        color_format: str = typer.Option("png", help="Colour image format: png or jpg."),
    ) -> None:
        """Capture frames into a session (manifest + 16-bit depth PNGs + colour images); safe to interrupt."""
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from socketedge.capture.capture import CaptureConfig
        from socketedge.capture.capture import capture as run_capture
        from socketedge.errors import DataError, DeviceError
        from socketedge.utils.progress import console, make_progress

        config = CaptureConfig(source=source, out=out, mode=mode, label=label, frames=frames, duration=duration,
                               every=every, preview=preview, record=record, profile=profile, modality=modality,
                               color_format=color_format)
        # Transient: the summary line below replaces the bar, and an error stays one line.
        if frames:
            progress = make_progress(transient=True)
        else:
            progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                                TextColumn("{task.completed} frames"), TimeElapsedColumn(),
                                TextColumn("{task.fields[terms]}"), console=console, transient=True)
        with progress:
            task = progress.add_task("capture", total=frames, terms="")

            def status(s) -> None:
                progress.update(task, completed=s.written,
                                terms=f"fps={s.fps:.1f} seen={s.seen} drops={s.drops}")

            result = run_capture(config, on_status=status)
        console.print(f"[bold]{result.written}[/] frames written to {result.out} (capture {result.capture_id}, "
                      f"{result.sensor}); {result.seen} read at {result.fps:.1f} fps, {result.drops} dropped; "
                      f"stopped: {result.stopped_by}", highlight=False)
        if result.error:
            kind = DataError if result.stopped_by == "write_error" else DeviceError
            raise kind(f"{result.error} (the session keeps the {result.written} frames written before it)")
