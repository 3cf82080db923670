"""ONNX export: onnxruntime agrees with the PyTorch fused model; one checked file; the model card round-trips."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from socketedge.export.metadata import INPUT_NAME, OUTPUT_LABEL, OUTPUT_PROBS, ModelCard
from socketedge.export.pipeline import ExportConfig, export_model, sha256_files
from socketedge.fuse import fuse
from socketedge.models.bundle import load_bundle


def frames(n: int, h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 7000, (n, 1, h, w)).astype(np.uint16)


@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_matches_pytorch_fp32(exported, n, batch):
    bundle, result = exported[n]
    fused, _ = fuse(load_bundle(bundle)[0])
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    for h, w in ((40, 40), (48, 64), (32, 32)):  # dynamic H/W, including the model's own input size
        x = frames(batch, h, w, seed=h + batch)
        probs, label = session.run([OUTPUT_PROBS, OUTPUT_LABEL], {INPUT_NAME: x})
        with torch.no_grad():
            ref_probs, ref_label = fused(torch.from_numpy(x))
        assert probs.dtype == np.float32 and label.dtype == np.int64 and probs.shape == (batch, 4)
        np.testing.assert_allclose(probs, ref_probs.numpy(), atol=1e-5, rtol=0)
        np.testing.assert_array_equal(label, probs.argmax(1))
        assert (label == ref_label.numpy()).mean() >= 0.8  # near-ties of a random model may flip


@pytest.mark.parametrize("n", [1, 2])
def test_graph_is_one_checked_file(exported, n):
    _, result = exported[n]
    model = onnx.load(str(result.onnx_path))
    onnx.checker.check_model(model, full_check=True)
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert sorted(p.name for p in result.onnx_path.parent.iterdir()) == ["model.onnx", "model.onnx.parity.json"]
    (inp,) = model.graph.input
    assert inp.name == INPUT_NAME and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT16
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", 1, "H", "W"]
    assert [o.name for o in model.graph.output] == [OUTPUT_PROBS, OUTPUT_LABEL]
    ops = [node.op_type for node in model.graph.node]
    assert "BatchNormalization" not in ops and ops.count("Resize") == 1
    assert ops.count("Softmax") == n
    if n == 1:  # a single source is a single branch: softmax → argmax, nothing mixed
        assert "Add" not in ops[ops.index("Softmax"):]


def test_metadata_round_trip(exported, bundle2):
    _, result = exported[2]
    session = ort.InferenceSession(str(result.onnx_path), providers=["CPUExecutionProvider"])
    card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
    assert card == result.card
    assert card.class_names == ["a", "b", "c", "d"] and card.modality == "depth"
    assert card.input_dtype == "uint16" and card.input_units == "depth_raw" and card.depth_scale == 0.001
    assert card.zeta == pytest.approx([0.35, 0.65]) and card.sources == ["tiny_cnn", "tiny_cnn_wide"]
    assert card.method == "socket" and card.precision == "fp32"
    assert card.preprocessing[0]["input_size"] == 32 and card.preprocessing[0]["depth_far"] == 5.0
    assert {"socketedge", "torch", "onnx", "onnxruntime"} <= set(card.versions)
    assert card.bundle_sha256 == sha256_files(bundle2)[0]
    assert set(card.extra["model_files"]) == {"bundle.json", "weights.safetensors"}
    assert card.parity_passed is True and card.parity["criterion"] == "max_abs"
    assert card.parity["batches"]["b1"]["frames"] == 16 and card.parity["batches"]["b8"]["batch"] == 8
    assert json.loads(result.parity_path.read_text()) == card.parity
    assert "16 depth frames" in card.parity["data"]


def test_sha256_changes_with_weights(tmp_path, bundle2):
    import shutil

    copy = shutil.copytree(bundle2, tmp_path / "b")
    before = sha256_files(copy)[0]
    (copy / "bundle.json").write_text((copy / "bundle.json").read_text().replace("socket", "shot", 1))
    assert sha256_files(copy)[0] != before


def test_fp16_keeps_float32_io(bundle2, export_root):
    result = export_model(ExportConfig(model=bundle2, out=export_root / "fp16" / "model.onnx", precision="fp16"))
    model = onnx.load(str(result.onnx_path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT16
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    init = {t.name: t for t in model.graph.initializer}
    weights = [init[n.input[1]] for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(weights) == 10 and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    # the raw depth never passes through float16: the input's Cast goes straight to float32
    first = next(n for n in model.graph.node if INPUT_NAME in n.input)
    assert first.op_type == "Cast" and first.attribute[0].i == onnx.TensorProto.FLOAT
    assert result.card.precision == "fp16" and result.passed
    assert result.card.parity["criterion"] == "top1" and result.card.parity["worst"] >= 0.99
    assert result.card.parity["batches"]["b1"]["max_abs"] < 1e-2
