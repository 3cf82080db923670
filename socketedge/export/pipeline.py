"""`socketedge export` as one library call: model → fused graph → ONNX (fp32 / fp16 / int8) → parity → card
(→ TensorRT engine).

``export_model(ExportConfig(...))`` writes ``<out>`` (always an ``.onnx`` for the onnx format; for the tensorrt
format the ONNX goes next to the engine), ``<onnx>.parity.json`` and, for TensorRT, ``<engine>`` +
``<engine>.json``. A candidate that fails its parity check never replaces ``<out>``: it is written beside it as
``<name>.failed.onnx`` (+ its parity report), marked ``parity.passed = false`` in its metadata, so a good model
already at ``<out>`` stays untouched; the result says so, the CLI exits 1 and ``run`` refuses such a file. An existing ``.onnx`` can be turned into an engine on the
target device (``MODEL = model.onnx --format tensorrt``); its card is read from the file.
``precision="auto"`` builds fp32, fp16 and both int8 forms, measures them on this machine (export/auto.py) and
keeps the fastest that agrees with fp32; the card's ``extra["precision_auto"]`` says what was measured and why.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from socketedge.errors import ConfigError, DataError, ModelError
from socketedge.export.formats import resolve
from socketedge.export.metadata import ModelCard
from socketedge.utils.atomic import write_json_atomic
from socketedge.utils.progress import make_progress

DEFAULT_FRAME_SIZE = (480, 640)  # TensorRT profile (H, W) when neither --frame-size nor real frames say


class ExportConfig(BaseModel):
    model: Path  # bundle directory, source .ckpt, or (tensorrt format only) an exported .onnx
    out: Path
    format: str = "onnx"
    precision: str | None = None  # default fp32; auto: measured (export/auto.py); for an .onnx MODEL, its own
    calib: Path | None = None  # default: the bundle's target folder (config["target"])
    modality: str | None = None
    calib_frames: int = Field(64, ge=1)
    threshold: float | None = None  # parity threshold; default from the precision table
    int8_activations: str = "int8"  # int8 (symmetric; TensorRT) | uint8 (asymmetric; onnxruntime's int8 kernels)
    # int8: quantization-aware fine-tuning steps on the calibration frames before quantizing (export/qat.py); 0: off
    int8_finetune: int = Field(0, ge=0)
    # int8: keep each source's first convolution float32 too (the linear head always is; precision.Int8Builder)
    int8_float_stem: bool = False
    # --precision auto: minimum top-1 agreement with fp32 on the calibration frames, and how candidates are timed
    auto_min_agreement: float = Field(0.99, ge=0, le=1)
    # --precision auto: largest mean total-variation distance to fp32's probabilities (export/auto.py)
    auto_max_prob_error: float = Field(0.02, ge=0, le=1)
    auto_backend: str = "onnxruntime-cpu"  # the runtime backend the model will be deployed with
    auto_threads: int | None = Field(None, ge=1)  # default: the free cores, as `run` uses
    auto_warmup: int = Field(5, ge=0)
    auto_iters: int = Field(30, ge=1)
    # TensorRT
    frame_size: tuple[int, int] | None = None  # (H, W) of the engine profile; default: the calibration frames'
    max_batch: int = Field(8, ge=1)
    workspace_gb: float = Field(2.0, gt=0)
    timing_cache: Path | None = None


def failed_path(path: Path) -> Path:
    """Where a candidate that failed its parity check goes instead of ``path``: keep.onnx → keep.failed.onnx."""
    path = Path(path)
    return path.with_name(f"{path.stem}.failed{path.suffix}")


def check_threshold(threshold: float | None, criterion: str) -> None:
    """--parity-threshold: a probability difference (max_abs) or an agreement share (top1), both in (0, 1]."""
    if threshold is None:
        return
    what = "the largest allowed |Δp|" if criterion == "max_abs" else "the minimum top-1 agreement"
    if not (0 < threshold <= 1):  # also refuses NaN
        raise ConfigError(f"--parity-threshold {threshold:g}: expected a number in (0, 1], {what} "
                          f"(e.g. {'1e-4' if criterion == 'max_abs' else '0.97'})")


@dataclass
class ExportResult:
    onnx_path: Path
    card: ModelCard
    parity_path: Path | None = None
    engine_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.card.parity.get("passed", False))


def sha256_files(path: Path) -> tuple[str, dict[str, str]]:
    """(combined, per-file) sha256 of a file or of every file of a directory, by relative name."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.suffix != ".tmp")
    per_file, total = {}, hashlib.sha256()
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        name = f.name if f == path else f.relative_to(path).as_posix()
        per_file[name] = h.hexdigest()
        total.update(f"{name}\0{per_file[name]}\n".encode())
    return total.hexdigest(), per_file


def build_card(ensemble, manifest, model_path: Path, precision: str) -> ModelCard:
    from socketedge.utils.versions import versions

    spec = ensemble.members[0].preprocess.spec
    depth = spec.modality == "depth"
    digest, per_file = sha256_files(model_path)
    return ModelCard(
        class_names=list(ensemble.class_names), modality=spec.modality, input_dtype=spec.raw_dtype,
        input_units="depth_raw" if depth else "intensity_8bit", depth_scale=spec.depth_scale if depth else None,
        preprocessing=[m.preprocess.spec.model_dump(mode="json") for m in ensemble.members],
        zeta=[float(z) for z in ensemble.zeta.tolist()], sources=[m.model.meta.arch for m in ensemble.members],
        method=manifest.method if manifest is not None else "source", precision=precision,
        versions=versions("onnxscript", "onnxslim"), bundle_sha256=digest,
        extra={"model_files": per_file, "model": str(Path(model_path).name)})


def _load(cfg: ExportConfig):
    from socketedge.models.bundle import is_bundle, read_manifest
    from socketedge.models.loading import load_ensemble

    if not cfg.model.exists():
        raise ModelError(f"model {cfg.model} does not exist; pass an adapted bundle directory or a source .ckpt")
    manifest = read_manifest(cfg.model) if is_bundle(cfg.model) else None
    if manifest is None and cfg.modality is None:
        # a bundle knows its target camera; a bare source checkpoint is exported for the camera the user names
        raise ConfigError(f"{cfg.model} is a source checkpoint: pass --modality (rgb | depth | nir | thermal) for "
                          "the camera the graph will read")
    ensemble = load_ensemble([cfg.model], modality=cfg.modality)
    return ensemble, manifest


def _calibration_dir(cfg: ExportConfig, manifest) -> Path | None:
    if cfg.calib is not None:
        return cfg.calib
    target = (manifest.config.get("target") if manifest is not None else None) or None
    if target and not Path(target).exists():
        raise DataError(f"the bundle's target folder {target} is gone; pass --calib DIR with {manifest.modality} "
                        "frames")
    return Path(target) if target else None


def export_model(cfg: ExportConfig) -> ExportResult:
    auto = cfg.precision == "auto"
    fmt, prec = resolve(cfg.format, "fp32" if auto else cfg.precision or "fp32")
    from socketedge.export.precision import INT8_ACTIVATIONS
    from socketedge.utils.outputs import check_output_file

    check_threshold(cfg.threshold, prec.criterion)
    check_output_file(cfg.out, "--out", "model.engine" if fmt.name == "tensorrt" else "model.onnx")

    if cfg.int8_activations not in INT8_ACTIVATIONS:
        raise ConfigError(f"--int8-activations {cfg.int8_activations!r}: expected one of {', '.join(INT8_ACTIVATIONS)}")
    if auto and fmt.name != "onnx":
        raise ConfigError("--precision auto times onnxruntime candidates; for --format tensorrt pass --precision "
                          "fp32|fp16|int8 (TensorRT picks its kernels when it builds the engine)")
    if auto and cfg.int8_activations != "int8":
        raise ConfigError("--precision auto tries both int8 activation forms itself; drop --int8-activations")
    if cfg.int8_float_stem and (auto or prec.name != "int8"):
        raise ConfigError("--int8-float-stem is for --precision int8 graphs (--precision auto tries a stem-float "
                          "candidate itself)")
    if cfg.int8_finetune and (auto or prec.name != "int8"):
        raise ConfigError("--int8-finetune fine-tunes for an int8 graph: pass --precision int8 (--precision auto "
                          "tries a fine-tuned candidate itself when plain int8 misses its tolerance)")
    if cfg.int8_activations != "int8" and (fmt.name == "tensorrt" or prec.name != "int8"):
        raise ConfigError("--int8-activations uint8 is for --precision int8 graphs run by onnxruntime; TensorRT's "
                          "explicit quantization needs symmetric int8 activations")
    if fmt.name == "tensorrt":
        from socketedge.export.tensorrt import require_tensorrt

        require_tensorrt()  # fail before minutes of export work
        if cfg.out.suffix not in (".engine", ".plan"):
            raise ConfigError(f"--out {cfg.out} should end in .engine (or .plan) for --format tensorrt; the ONNX "
                              "it is built from is written next to it")
        if cfg.model.suffix == ".onnx":
            return _engine_from_onnx(cfg)
    elif cfg.out.suffix != ".onnx":
        raise ConfigError(f"--out {cfg.out} should end in .onnx for --format onnx")
    if cfg.model.suffix == ".onnx":
        raise ConfigError(f"{cfg.model} is already exported; an .onnx model is only accepted with --format tensorrt")

    import torch

    from socketedge.export import onnx_export, parity, precision
    from socketedge.export.frames import load_frames, synthetic_frames
    from socketedge.fuse import fuse

    ensemble, manifest = _load(cfg)
    modality = ensemble.modality
    notes: list[str] = []
    calib = _calibration_dir(cfg, manifest)
    if calib is not None:
        frames = load_frames(calib, modality, cfg.calib_frames)
        data = f"{len(frames)} {modality} frames from {calib}"
    elif prec.name == "int8" or auto:
        raise ConfigError(f"{'--precision auto' if auto else 'int8'} needs real target frames to calibrate and "
                          f"check on: pass --calib DIR (the model {cfg.model} records no target folder)")
    else:
        frames = synthetic_frames(modality, (120, 160), 16)
        data = "synthetic (no --calib and no target folder recorded in the model)"
        notes.append(f"parity measured on {data}; pass --calib DIR to check on real frames")

    if cfg.int8_finetune and len(frames) < 4:
        raise ConfigError(f"--int8-finetune trains on three quarters of the calibration frames and judges on the "
                          f"rest: {len(frames)} frame(s) from {calib} is too few (pass --calib-frames ≥ 4; 64+ is "
                          "better)")
    with make_progress(transient=True) as progress:
        stages = progress.add_task("export", total=5, terms="")

        def stage(what: str) -> None:
            progress.update(stages, description=f"export: {what}")

        stage("fusing")
        fused, folds = fuse(ensemble)
        progress.advance(stages)
        stage("torch → ONNX")
        graph = onnx_export.graph_of(fused)
        progress.advance(stages)
        stage("choosing precision" if auto else f"{prec.name} graph")
        activations, auto_record, finetune_record = cfg.int8_activations, None, None
        float_stem = cfg.int8_float_stem
        if auto:
            from socketedge.export import auto as auto_precision
            from socketedge.export.formats import PRECISIONS

            choice = auto_precision.select(
                fused, graph, frames, build_card(ensemble, manifest, cfg.model, "fp32"),
                min_agreement=cfg.auto_min_agreement, max_prob_error=cfg.auto_max_prob_error,
                backend=cfg.auto_backend, threads=cfg.auto_threads,
                warmup=cfg.auto_warmup, iters=cfg.auto_iters, progress=progress)
            graph, prec, auto_record = choice.graph, PRECISIONS.get(choice.candidate.precision), choice.record
            activations = choice.candidate.int8_activations or activations
            float_stem = choice.candidate.float_stem
            if choice.candidate.finetune:
                finetune_record = next(c["finetune"] for c in auto_record["candidates"]
                                       if c["name"] == choice.candidate.name)
        elif prec.name == "fp16":
            graph = precision.to_fp16(graph)
        elif prec.name == "int8" and cfg.int8_finetune:
            from socketedge.export import qat

            tuned = qat.finetune(fused, frames, activations, steps=cfg.int8_finetune, float_stem=float_stem,
                                 progress=progress)
            finetune_record = tuned.record
            graph = precision.to_int8(onnx_export.graph_of(tuned.model), frames, activations, float_stem=float_stem)
        elif prec.name == "int8":
            graph = precision.to_int8(graph, frames, activations, float_stem=float_stem)
        progress.advance(stages)
        stage("checking")
        onnx_export.check(graph)
        progress.advance(stages)
        stage("parity")
        session = parity.session_for(graph.SerializeToString())
        report = parity.judge(parity.measure(fused, session, frames, progress=progress), prec, cfg.threshold)
        progress.advance(stages)

    card = build_card(ensemble, manifest, cfg.model, prec.name)
    card.extra.update({
        "exporter": f"torch.onnx dynamo (torch {torch.__version__})", "opset": onnx_export.opset_of(graph),
        "calibration": data, "format": fmt.name,
        **({"int8_activations": activations, "int8_weight_bits": _weight_bits(activations, auto_record),
            "int8_float_layers": precision.float_layers(float_stem)} if prec.name == "int8" else {}),
        **({"precision_auto": auto_record} if auto_record else {}),
        **({"int8_finetune": finetune_record} if finetune_record else {}),
        "fuse": [{"batchnorm_folded": f.batchnorm_folded, "batchnorm_left": f.batchnorm_left,
                  "parametrizations_removed": f.parametrizations_removed, "notes": f.notes} for f in folds]})

    report["data"] = data
    card.parity = report
    onnx_path = cfg.out if fmt.name == "onnx" else cfg.out.with_suffix(".onnx")
    if not report["passed"]:  # never over a model that may be good: beside it, under a name that says so
        onnx_path = failed_path(onnx_path)
    onnx_export.set_metadata(graph, card)
    onnx_export.save(graph, onnx_path)
    parity_path = onnx_path.with_name(onnx_path.name + ".parity.json")
    write_json_atomic(parity_path, json.dumps(report, indent=2))
    result = ExportResult(onnx_path, card, parity_path, notes=notes)
    if fmt.name == "tensorrt":
        if not report["passed"]:
            notes.append("TensorRT engine not built: the ONNX failed its parity check")
            return result
        from socketedge.export.tensorrt import build_engine

        size = cfg.frame_size or (_common_size(frames) if calib is not None else DEFAULT_FRAME_SIZE)
        result.card = build_engine(onnx_path, cfg.out, card, size, cfg.max_batch, 1, cfg.workspace_gb,
                                   cfg.timing_cache)
        result.engine_path = cfg.out
    return result


def _weight_bits(activations: str, auto_record: dict | None) -> int:
    """The int8 graph's weight range: 8-bit in the TensorRT form, 7-bit (reduce_range) in the uint8 form unless
    --precision auto found a CPU whose u8×s8 products do not saturate (precision.reduce_range_for)."""
    if activations != "uint8":
        return 8
    return auto_record.get("uint8_weight_bits", 7) if auto_record else 7


def _common_size(frames) -> tuple[int, int]:
    from collections import Counter

    return Counter(f.shape[:2] for f in frames).most_common(1)[0][0]  # (H, W) of (H, W) or (H, W, 3) frames


def _engine_from_onnx(cfg: ExportConfig) -> ExportResult:
    """An engine from an already exported ONNX (on the target device): card and parity come from its metadata."""
    import onnx

    from socketedge.export.tensorrt import build_engine

    try:
        model = onnx.load_model(str(cfg.model), load_external_data=False)
    except Exception as e:  # protobuf DecodeError / OSError
        raise ModelError(f"{cfg.model} is not a readable ONNX file ({type(e).__name__})") from None
    card = ModelCard.from_props({p.key: p.value for p in model.metadata_props}) if any(
        p.key.startswith("socketedge.") for p in model.metadata_props) else None
    if card is None:
        raise ModelError(f"{cfg.model} carries no socketedge model card; export it with `socketedge export` first")
    if card.extra.get("int8_activations", "int8") != "int8":
        raise ConfigError(f"{cfg.model} has uint8 (asymmetric) activations, which TensorRT cannot build; re-export "
                          "with --precision int8 --int8-activations int8")
    if card.parity_passed is False:
        raise ModelError(f"{cfg.model} is marked as having failed its parity check; re-export it")
    if cfg.precision and cfg.precision != card.precision:
        raise ConfigError(f"{cfg.model} is a {card.precision} graph; TensorRT takes precision from the graph, so "
                          f"pass --precision {card.precision} or re-export")
    engine_card = build_engine(cfg.model, cfg.out, card, cfg.frame_size or DEFAULT_FRAME_SIZE, cfg.max_batch, 1,
                               cfg.workspace_gb, cfg.timing_cache)
    return ExportResult(cfg.model, engine_card, engine_path=cfg.out)
