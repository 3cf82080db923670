"""TensorRT engine from the exported ONNX, with the TensorRT Python API (10.x and 11.x).

Precision comes from the ONNX graph: networks are created strongly typed (``STRONGLY_TYPED``: opt-in on 10.x,
always on and the flag ignored on 11.x, which removed the FP16/INT8 builder flags and the INT8 calibrator), so
an fp16 graph builds fp16 kernels and a Q/DQ graph builds explicit int8. On a 10.x that lacks strong typing, or
when asked (``strongly_typed=False``, 10.x only), the FP16/INT8 builder flags are set instead.

TensorRT has no uint16 tensors: a depth graph's ``frames`` input is rewritten to int32 (its first node is already
a Cast to float), and the sidecar card says ``input_dtype: int32``. One optimisation profile covers batch
1..max_batch at the camera's frame size; tactic timings are kept in a timing cache file to speed up rebuilds.
An engine only runs on the GPU model and TensorRT version it was built with: build it on the target device.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from socketedge.errors import ConfigError, ModelError, lazy_import, short
from socketedge.export.metadata import INPUT_NAME, ModelCard
from socketedge.utils.atomic import write_bytes_atomic, write_json_atomic

WHY = "an engine must be built on the target device with that device's TensorRT (on a Jetson: JetPack's)"


def require_tensorrt():
    return lazy_import("tensorrt", "tensorrt", WHY)


def sidecar_path(engine: Path) -> Path:
    """``model.engine`` → ``model.engine.json``: the engine's model card."""
    return Path(engine).with_name(Path(engine).name + ".json")


def tensorrt_input(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """A copy of ``model`` whose input type TensorRT accepts, and that type's name."""
    model_copy = onnx.ModelProto.FromString(model.SerializeToString())
    tensor_type = model_copy.graph.input[0].type.tensor_type
    if tensor_type.elem_type == onnx.TensorProto.UINT16:
        tensor_type.elem_type = onnx.TensorProto.INT32
    return model_copy, onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name


def build_engine(onnx_path: Path, engine_path: Path, card: ModelCard, frame_size: tuple[int, int] = (480, 640),
                 max_batch: int = 8, opt_batch: int = 1, workspace_gb: float = 2.0, timing_cache: Path | None = None,
                 strongly_typed: bool | None = None) -> ModelCard:
    """Build ``engine_path`` from ``onnx_path`` and write its sidecar card; returns that card."""
    trt = require_tensorrt()
    if not 1 <= opt_batch <= max_batch:
        raise ConfigError(f"batch sizes must satisfy 1 <= opt ({opt_batch}) <= max ({max_batch})")
    major = int(trt.__version__.split(".")[0])
    have_strong = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    if strongly_typed is False and major >= 11:
        raise ConfigError(f"TensorRT {trt.__version__} always builds strongly typed networks; "
                          "drop the weak-typing option")
    strong = have_strong if strongly_typed is None else strongly_typed and have_strong

    model, input_dtype = tensorrt_input(onnx.load_model(str(onnx_path)))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strong else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT {trt.__version__} cannot parse {onnx_path}: {short(errors, 300)}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if not strong:  # weak typing (10.x): precision hints as builder flags
        for flag in {"fp16": ("FP16",), "int8": ("INT8", "FP16")}.get(card.precision, ()):
            if hasattr(trt.BuilderFlag, flag):
                config.set_flag(getattr(trt.BuilderFlag, flag))
    h, w = frame_size
    c = 3 if card.modality == "rgb" else 1  # an 8-bit colour target takes (N, 3, H, W)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, c, h, w), (opt_batch, c, h, w), (max_batch, c, h, w))
    config.add_optimization_profile(profile)
    cache_file = Path(timing_cache) if timing_cache else Path(engine_path).with_suffix(".timing.cache")
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"TensorRT {trt.__version__} could not build an engine from {onnx_path}; "
                         "see its log above (often: too little workspace, try a larger --workspace-gb)")
    engine_path = Path(engine_path)
    write_bytes_atomic(engine_path, bytes(serialized))
    write_bytes_atomic(cache_file, bytes(config.get_timing_cache().serialize()))

    extra = dict(card.extra)
    extra["tensorrt"] = {
        "version": trt.__version__, "strongly_typed": bool(strong), "onnx": str(onnx_path),
        "profile": {"min": [1, c, h, w], "opt": [opt_batch, c, h, w], "max": [max_batch, c, h, w]},
        "timing_cache": str(cache_file), "onnx_input_dtype": card.input_dtype,
    }
    engine_card = card.model_copy(update={"input_dtype": input_dtype, "extra": extra})
    write_json_atomic(sidecar_path(engine_path), engine_card.model_dump_json(indent=2))
    return engine_card
