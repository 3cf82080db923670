"""TensorRT: the engine build needs TensorRT and a GPU (marker ``tensorrt``); without TensorRT the command says
in one line what to install and where to build. The uint16 → int32 input rewrite is checked with onnxruntime."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from socketedge.export.metadata import INPUT_NAME, ModelCard
from socketedge.export.pipeline import ExportConfig, export_model
from socketedge.export.tensorrt import sidecar_path, tensorrt_input

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _gpu_reason() -> str | None:
    if not HAVE_TRT:
        return "TensorRT is not installed (pip install 'socketedge[tensorrt]' on a machine with an NVIDIA GPU)"
    import torch

    if not torch.cuda.is_available():
        return "TensorRT is installed but no CUDA GPU is visible"
    return None


def test_tensorrt_input_rewrite_keeps_outputs(exported):
    """TensorRT has no uint16 tensors: the depth input becomes int32 and the graph computes the same."""
    model = onnx.load(str(exported[2][1].onnx_path))
    rewritten, dtype = tensorrt_input(model)
    assert dtype == "int32" and model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT16
    onnx.checker.check_model(rewritten, full_check=True)
    x = np.random.default_rng(0).integers(0, 65535, (3, 1, 40, 56)).astype(np.uint16)
    a = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {INPUT_NAME: x})
    b = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {INPUT_NAME: x.astype(np.int32)})
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here; this checks the message shown without it")
def test_without_tensorrt_one_line(cli, bundle1, tmp_path):
    result = cli("export", bundle1, "--out", tmp_path / "m.engine", "--format", "tensorrt")
    assert result.exit_code == 1
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert "pip install 'socketedge[tensorrt]'" in line and "target device" in line
    assert not list(tmp_path.iterdir())  # failed before any export work


@pytest.mark.tensorrt
@pytest.mark.skipif(_gpu_reason() is not None, reason=_gpu_reason() or "")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_engine(bundle2, export_root, precision):
    import tensorrt as trt
    import torch

    out = export_root / f"trt_{precision}" / "model.engine"
    result = export_model(ExportConfig(model=bundle2, out=out, format="tensorrt", precision=precision,
                                       frame_size=(48, 64), max_batch=4))
    assert result.engine_path == out and out.is_file() and out.with_suffix(".timing.cache").is_file()
    card = ModelCard.model_validate(json.loads(sidecar_path(out).read_text()))
    assert card.precision == precision and card.input_dtype == "int32"
    assert card.extra["tensorrt"]["profile"]["max"] == [4, 1, 48, 64]
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(out.read_bytes())
    context = engine.create_execution_context()
    x = torch.randint(0, 7000, (4, 1, 48, 64), dtype=torch.int32, device="cuda")
    probs = torch.empty(4, 4, device="cuda")
    label = torch.empty(4, dtype=torch.int64, device="cuda")
    context.set_input_shape(INPUT_NAME, tuple(x.shape))
    for name, t in ((INPUT_NAME, x), ("probs", probs), ("label", label)):
        context.set_tensor_address(name, t.data_ptr())
    assert context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    ref = session.run(None, {INPUT_NAME: x.cpu().numpy().astype(np.uint16)})[0]
    agree = (probs.cpu().numpy().argmax(1) == ref.argmax(1)).mean()
    assert agree >= 0.75 and np.abs(probs.cpu().numpy() - ref).max() < (1e-3 if precision == "fp32" else 0.1)
