"""Quantization-aware fine-tuning (export/qat.py): the simulation rounds as onnxruntime does, removes cleanly, and
the fine-tuning brings the real int8 graph closer to fp32."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from export_helpers import random_ensemble
from onnx import numpy_helper

from socketedge.export import onnx_export, precision, qat
from socketedge.export.metadata import ModelCard
from socketedge.export.pipeline import ExportConfig, export_model
from socketedge.fuse import fuse
from socketedge.models.bundle import load_bundle
from test_int8 import calibration_frames


def _graph(fused) -> onnx.ModelProto:
    return onnx_export.graph_of(fused)


@pytest.fixture(scope="module")
def tiny():
    fused, _ = fuse(random_ensemble(1, seed=4))
    x = torch.randn(4, 3, *(2 * [fused.preprocess[0].spec.input_size]))
    return fused, x


@pytest.mark.parametrize("form", ["uint8", "int8"])
def test_instrument_then_strip_gives_back_the_float_network(tiny, form):
    fused, x = tiny
    branch = fused.branches[0]
    student, acts, weights = qat.instrument(branch, qat.FORMS[form])
    convs = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in branch.modules())
    assert len(weights) == convs == 5  # 3 convolutions, the bottleneck and the classifier
    # int8 (TensorRT form): the inputs of the 5 weighted layers; uint8 also the pools, adds and the logits
    assert len(acts) == 5 if form == "int8" else len(acts) > 5
    for w in weights:
        w.enabled = False
    with torch.no_grad():  # nothing observed and weights not rounded: the same function
        assert torch.equal(student(x), branch(x))
        qat._observe([student], acts, [x], [0], 2)
        for w in weights:
            w.enabled = True
        assert not torch.allclose(student(x), branch(x), atol=1e-6)  # the rounding does something
    back = qat.strip(student)
    assert not any(isinstance(m, qat.ActFakeQuant) for m in back.modules())
    assert back.state_dict().keys() == branch.state_dict().keys()
    assert all(torch.equal(back.state_dict()[k], v) for k, v in branch.state_dict().items())
    with torch.no_grad():
        assert torch.equal(back(x), branch(x))


@pytest.mark.parametrize("form,reduce_range", [("uint8", None), ("int8", None), ("uint8", False)])
def test_weight_rounding_is_the_exported_graphs(tiny, form, reduce_range):
    """Every weight the int8 graph dequantizes is exactly the simulation's rounding of the fused weight."""
    fused, _ = tiny
    frames = [np.random.default_rng(i).integers(300, 4000, (40, 40), dtype=np.uint16) for i in range(4)]
    graph = precision.to_int8(_graph(fused), frames, form, reduce_range=reduce_range, float_head=False)
    init = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    dequantized = []
    for node in graph.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in init and init[node.input[0]].dtype == np.int8 \
                and init[node.input[1]].ndim == 1 and init[node.input[0]].ndim >= 2:
            q, scale = init[node.input[0]].astype(np.float32), init[node.input[1]]
            dequantized.append(q * scale.reshape(-1, *[1] * (q.ndim - 1)))
    weight_max = qat.FORMS[form].weight_max if reduce_range is None else (64 if reduce_range else 127)
    fq = qat.WeightFakeQuant(weight_max)
    layers = [m for m in fused.branches[0].modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(dequantized) == len(layers)
    for m in layers:
        ours = fq(m.weight.detach()).numpy()
        assert any(d.shape == ours.shape and np.allclose(d, ours, rtol=0, atol=1e-7) for d in dequantized), m


def test_finetune_brings_the_int8_graph_closer_to_fp32(trained_bundle):
    fused, _ = fuse(load_bundle(trained_bundle)[0])
    frames = calibration_frames(trained_bundle)
    result = qat.finetune(fused, frames, "uint8", steps=60, lr=3e-3, check_every=10)
    rec = result.record
    assert rec["held_aside_frames"] == 8 and rec["train_frames"] == 24
    assert rec["after"]["kl"] < rec["before"]["kl"] and rec["kept_step"] > 0
    assert [h["step"] for h in rec["history"]] == list(range(0, 61, 10))
    # the original is untouched; the tuned copy has plain float weights and the same structure
    assert fused.branches[0].state_dict().keys() == result.model.branches[0].state_dict().keys()
    assert not any(isinstance(m, qat.ActFakeQuant) for m in result.model.modules())
    # the real onnxruntime int8 graphs, both against the original fp32 model, on the held-aside frames
    aside = frames[::4]
    ref = precision.run_probs(_graph(fused), aside)
    plain = precision.prob_errors(precision.run_probs(precision.to_int8(_graph(fused), frames, "uint8"), aside), ref)
    tuned = precision.prob_errors(
        precision.run_probs(precision.to_int8(_graph(result.model), frames, "uint8"), aside), ref)
    assert tuned["mean_tv"] < plain["mean_tv"], (plain, tuned)


def test_finetune_keeps_the_original_weights_when_nothing_beats_them(tiny):
    fused, _ = tiny
    frames = [np.random.default_rng(i).integers(300, 4000, (40, 40), dtype=np.uint16) for i in range(8)]
    result = qat.finetune(fused, frames, "uint8", steps=4, lr=0.0, check_every=2)
    assert result.record["kept_step"] == 0
    for k, v in fused.branches[0].state_dict().items():
        assert torch.equal(result.model.branches[0].state_dict()[k], v)
    assert result.record["weight_max"] == 64
    assert qat.finetune(fused, frames, "uint8", steps=1, reduce_range=False).record["weight_max"] == 127
    with pytest.raises(ValueError, match="activations"):
        qat.finetune(fused, frames, "int4")


def test_export_int8_finetune(trained_bundle, tmp_path, cli):
    result = export_model(ExportConfig(model=trained_bundle, out=tmp_path / "qat.onnx", precision="int8",
                                       int8_activations="uint8", int8_finetune=20))
    assert result.passed
    card = ModelCard.from_props({p.key: p.value for p in onnx.load(str(result.onnx_path)).metadata_props})
    record = card.extra["int8_finetune"]
    assert record["steps"] == 20 and record["activations"] == "uint8" and "after" in record
    assert card.parity["criterion"] == "top1" and card.parity["worst"] >= 0.97  # against the original fp32
    shown = cli("export", trained_bundle, "--out", tmp_path / "cli.onnx", "--precision", "int8", "--int8-finetune", "4")
    assert shown.exit_code == 0, shown.stderr
    assert "int8 fine-tuning: 4 steps on 24 frames" in " ".join(shown.stderr.split())
    refused = cli("export", trained_bundle, "--out", tmp_path / "fp16.onnx", "--precision", "fp16",
                  "--int8-finetune", "5")
    assert refused.exit_code == 1 and "--int8-finetune" in refused.stderr and "--precision int8" in refused.stderr
    few = cli("export", trained_bundle, "--out", tmp_path / "few.onnx", "--precision", "int8", "--int8-finetune", "5",
              "--calib-frames", "2")
    assert few.exit_code == 1 and "too few" in few.stderr and "Traceback" not in few.stderr


def test_finetune_refuses_a_network_fx_could_not_trace(tiny):
    from socketedge.errors import ModelError

    fused, _ = tiny
    plain = copy.deepcopy(fused)
    plain.branches = torch.nn.ModuleList([torch.nn.Sequential(*fused.branches[0].children())])
    frames = [np.random.default_rng(i).integers(300, 4000, (40, 40), dtype=np.uint16) for i in range(4)]
    with pytest.raises(ModelError, match="torch.fx"):
        qat.finetune(plain, frames, "uint8", steps=1)


def test_every_preprocessing_sees_the_same_augmented_frames():
    """Branches of an ensemble that preprocess differently must still be taught on one and the same frame."""
    x = torch.randn(6, 3, 16, 16)
    big = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    a, b = qat._augment([x, x.clone()], np.random.default_rng(0), mix=0.5)
    assert torch.equal(a, b) and not torch.equal(a, x)
    small, large = qat._augment([x, big], np.random.default_rng(1), mix=0.0)
    # the same flips and the same shifts as fractions of the side: the large one is the small one upsampled
    assert torch.equal(torch.nn.functional.interpolate(small, scale_factor=2, mode="nearest"), large)


@pytest.mark.parametrize("float_stem,float_head", [(False, True), (True, True), (False, False)])
def test_the_simulation_is_onnxruntimes_int8_graph(float_stem, float_head):
    """The simulated uint8 network (ranges observed on the calibration frames) computes what onnxruntime's int8
    graph computes, on a resnet18 — residual adds followed by ReLUs, whose Q onnxruntime puts after the ReLU, a
    float head and, optionally, a float stem: its distance to the real int8 graph is a small part of the int8
    graph's own distance to fp32."""
    fused, _ = fuse(random_ensemble(1, archs=["resnet18"], seed=1))
    frames = [np.random.default_rng(i).integers(300, 4000, (224, 224), dtype=np.uint16) for i in range(6)]
    fp32 = _graph(fused)
    real = precision.run_probs(precision.to_int8(fp32, frames, "uint8", float_stem=float_stem,
                                                 float_head=float_head), frames)
    reference = precision.run_probs(fp32, frames)
    branch = fused.branches[0]
    student, acts, _ = qat.instrument(branch, qat.FORMS["uint8"], qat.float_modules(branch, float_stem, float_head))
    inputs = qat._inputs(fused, frames)[0]
    qat._observe([student], acts, [inputs], [0], 3)
    with torch.no_grad():
        simulated = student(inputs).softmax(1).numpy()

    def centred_log(p):
        lp = np.log(np.clip(p, 1e-12, None))
        return lp - lp.mean(1, keepdims=True)

    int8_error = np.abs(centred_log(real) - centred_log(reference)).mean()
    assert int8_error > 1e-3  # the quantization does something measurable here
    assert np.abs(centred_log(simulated) - centred_log(real)).mean() < 0.6 * int8_error
