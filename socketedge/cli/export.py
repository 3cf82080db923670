"""`socketedge export`: an adapted bundle (or source checkpoint) → one fused ONNX graph (→ TensorRT engine)."""

from __future__ import annotations

from pathlib import Path

import typer

ORDER = 40


def _frame_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    from socketedge.errors import ConfigError

    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--frame-size {value!r} is not HxW, e.g. 480x640") from None
    if h < 1 or w < 1:
        raise ConfigError(f"--frame-size {value!r} must be positive, e.g. 480x640")
    return h, w


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        model: Path = typer.Argument(..., help="Adapted bundle directory or source .ckpt (or, with --format "
                                     "tensorrt, an exported .onnx to build the engine from)."),
        out: Path = typer.Option(..., "--out", "-o", help="model.onnx (--format onnx) or model.engine (tensorrt)."),
        precision: str = typer.Option(None, "--precision", "-p", help="fp32 (default) | fp16 | int8 | auto: "
                                      "measure fp32, fp16 and both int8 forms on this machine and keep the fastest "
                                      "that agrees with fp32."),
        calib: Path = typer.Option(None, "--calib", help="Target frames for int8 calibration and the parity "
                                   "check (default: the bundle's target folder)."),
        fmt: str = typer.Option("onnx", "--format", "-f", help="onnx | tensorrt."),
        modality: str = typer.Option(None, "--modality", "-m", help="Frames the model will see (needed for a "
                                     "source .ckpt): rgb | depth | nir | thermal."),
        calib_frames: int = typer.Option(64, "--calib-frames", min=1, help="How many frames to calibrate and "
                                         "check parity on."),
        threshold: float = typer.Option(None, "--parity-threshold", help="fp32: max |Δp| (1e-4); fp16 / int8: "
                                        "minimum top-1 agreement (0.99 / 0.97)."),
        int8_activations: str = typer.Option("int8", "--int8-activations", help="int8: symmetric, for TensorRT "
                                             "and onnxruntime | uint8: asymmetric, faster in onnxruntime on x86 "
                                             "CPUs, not for TensorRT."),
        int8_finetune: int = typer.Option(0, "--int8-finetune", min=0, help="int8: quantization-aware "
                                          "fine-tuning steps before quantizing — the weights taught to reproduce "
                                          "fp32 through int8 rounding on the calibration frames (minutes on a CPU; "
                                          "0: plain post-training quantization)."),
        int8_float_stem: bool = typer.Option(False, "--int8-float-stem", help="int8: keep each source's first "
                                             "convolution float32 as well as the linear head — the depth enters "
                                             "at full precision instead of in 8-bit steps; slower."),
        auto_min_agreement: float = typer.Option(0.99, "--auto-min-agreement", min=0.0, max=1.0,
                                                 help="--precision auto: minimum top-1 agreement with fp32 on "
                                                 "the calibration frames."),
        auto_max_prob_error: float = typer.Option(0.02, "--auto-max-prob-error", min=0.0, max=1.0,
                                                  help="--precision auto: largest mean probability error "
                                                  "(total-variation distance, ½Σ|Δp| per frame) to fp32 on the "
                                                  "calibration frames."),
        auto_backend: str = typer.Option("onnxruntime-cpu", "--auto-backend", help="--precision auto: the "
                                         "backend the model will run on (as `run --backend`)."),
        auto_threads: int = typer.Option(None, "--auto-threads", min=1, help="--precision auto: CPU threads "
                                         "to time with (default: the free cores)."),
        frame_size: str = typer.Option(None, "--frame-size", help="TensorRT profile frame size HxW (default: "
                                       "the calibration frames', else 480x640)."),
        max_batch: int = typer.Option(8, "--max-batch", min=1, help="TensorRT profile maximum batch."),
        workspace_gb: float = typer.Option(2.0, "--workspace-gb", help="TensorRT builder workspace (GiB)."),
        timing_cache: Path = typer.Option(None, "--timing-cache", help="TensorRT timing cache file (default: "
                                          "next to the engine)."),
    ) -> None:
        """Fuse the sources, ζ and preprocessing into one graph taking raw frames; write ONNX (+ TensorRT)."""
        from socketedge.errors import ParityError
        from socketedge.export.parity import table
        from socketedge.export.pipeline import ExportConfig, export_model
        from socketedge.utils.progress import console

        cfg = ExportConfig(model=model, out=out, format=fmt, precision=precision, calib=calib, modality=modality,
                           calib_frames=calib_frames, threshold=threshold, int8_activations=int8_activations,
                           int8_finetune=int8_finetune, int8_float_stem=int8_float_stem,
                           auto_min_agreement=auto_min_agreement, auto_max_prob_error=auto_max_prob_error,
                           auto_backend=auto_backend,
                           auto_threads=auto_threads,
                           frame_size=_frame_size(frame_size),
                           max_batch=max_batch, workspace_gb=workspace_gb, timing_cache=timing_cache)
        result = export_model(cfg)
        card = result.card
        if "precision_auto" in card.extra:
            from socketedge.runtime.bench import choice_table

            console.print(choice_table(card.extra["precision_auto"]))
        if "int8_finetune" in card.extra:
            ft = card.extra["int8_finetune"]
            b, a = ft["before"], ft["after"]
            console.print(f"int8 fine-tuning: {ft['steps']} steps on {ft['train_frames']} frames, weights of step "
                          f"{ft['kept_step']} kept; simulated int8 vs fp32 on the {ft['held_aside_frames']} frames "
                          f"held aside: top-1 agreement {100 * b['agreement']:.1f}% → {100 * a['agreement']:.1f}%, mean "
                          f"probability error (TV) {b['mean_tv']:.4f} → {a['mean_tv']:.4f}")
        if card.parity:
            console.print(table(card.parity))
        for note in result.notes:
            console.print(f"[yellow]note:[/] {note}")
        console.print(f"wrote {result.onnx_path} ({card.precision}, {len(card.sources)} source(s), "
                      f"{len(card.class_names)} classes, {card.modality} {card.input_dtype})")
        if result.parity_path:
            console.print(f"wrote {result.parity_path}")
        if result.engine_path:
            console.print(f"wrote {result.engine_path} + {result.engine_path}.json")
        if card.parity and not card.parity.get("passed"):
            kept = "is unchanged" if out.exists() else "was not written"
            raise ParityError(f"the export failed its parity check ({card.parity['criterion']} "
                              f"{card.parity['worst']:.4g} vs threshold {card.parity['threshold']:g}): {out} {kept}; "
                              f"the candidate is {result.onnx_path}, marked failed (`run` refuses it) — inspect the "
                              "table above")
