"""int8: static Q/DQ quantization calibrated on real target frames runs in onnxruntime and keeps the top-1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from socketedge.data.imageio import read_image
from socketedge.export.metadata import INPUT_NAME, ModelCard
from socketedge.export.pipeline import ExportConfig, export_model
from socketedge.fuse import fuse
from socketedge.models.bundle import load_bundle, read_manifest
from socketedge.runtime.ort_profile import kernel_census, op_times_ms


@pytest.fixture(scope="module")
def int8(trained_bundle, export_root):
    return export_model(ExportConfig(model=trained_bundle, out=export_root / "int8" / "model.onnx", precision="int8"))


def calibration_frames(bundle) -> list[np.ndarray]:
    return [read_image(p, "depth") for p in sorted(Path(read_manifest(bundle).config["target"]).rglob("*.png"))]


def test_int8_agrees_with_fp32_on_calibration_set(int8, trained_bundle):
    sq = ort.InferenceSession(str(int8.onnx_path), providers=["CPUExecutionProvider"])
    fused, _ = fuse(load_bundle(trained_bundle)[0])
    frames = calibration_frames(trained_bundle)
    assert len(frames) == 32
    pq = np.concatenate([sq.run(None, {INPUT_NAME: x[None, None]})[0] for x in frames])
    with torch.no_grad():
        pf = fused(torch.from_numpy(np.stack(frames)[:, None]))[0].numpy()
    # the trained model is confident, so agreement is not decided by near-ties
    assert pf.max(1).mean() > 0.6 and len(set(pf.argmax(1))) == 4
    assert (pq.argmax(1) == pf.argmax(1)).mean() >= 0.97
    assert np.abs(pq - pf).max() < 0.2  # int8, but not garbage
    card = ModelCard.from_props(dict(sq.get_modelmeta().custom_metadata_map))
    assert card.precision == "int8" and card.parity_passed and card.parity["criterion"] == "top1"
    assert "32 depth frames" in card.parity["data"]


def test_int8_graph_is_qdq_per_channel_symmetric(int8):
    model = onnx.load(str(int8.onnx_path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 3
    for conv in convs:
        x_dq, w_dq = producers[conv.input[0]], producers[conv.input[1]]
        assert x_dq.op_type == "DequantizeLinear" and w_dq.op_type == "DequantizeLinear"
        w, scale, zero = (init[w_dq.input[i]] for i in range(3))
        assert w.dtype == np.int8 and scale.shape == (w.shape[0],)  # one scale per output channel
        assert not zero.any() and not init[x_dq.input[2]].any()  # symmetric (TensorRT explicit quantization)
    # the preprocessing stays float: nothing is quantized before the first Div (normalisation)
    ops = [n.op_type for n in model.graph.node if n.op_type != "DequantizeLinear"]
    assert "QuantizeLinear" not in ops[:ops.index("Div")]


def test_uint8_activations_for_onnxruntime_cpu(exported, target_dir):
    """The asymmetric uint8-activation variant (faster onnxruntime kernels on x86) quantizes and runs."""
    from socketedge.export.frames import load_frames
    from socketedge.export.precision import to_int8

    fp32 = onnx.load(str(exported[1][1].onnx_path))
    frames = load_frames(target_dir, "depth", 8)
    model = to_int8(fp32, frames, activations="uint8")
    zero_points = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("_zero_point")]
    assert any(z.dtype == np.uint8 for z in zero_points) and any(z.dtype == np.int8 for z in zero_points)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    probs = session.run(None, {INPUT_NAME: np.stack(frames[:4])[:, None]})[0]
    assert probs.shape == (4, 4) and np.allclose(probs.sum(1), 1, atol=1e-3)
    # what onnxruntime's optimizer makes of it: every convolution an int8 kernel, the linear head float32 (the
    # default float_head), and the preprocessing and the softmax still float: one Q after the normalisation, one DQ
    # before the global pooling (a float ReduceMean) that feeds the head
    convs, gemms = (sum(n.op_type == op for n in fp32.graph.node) for op in ("Conv", "Gemm"))
    census = kernel_census(model.SerializeToString())
    assert census.quantized == convs and census.float_fallback == gemms == 2, census
    assert census.ops.get("QuantizeLinear") == 1 and census.ops.get("DequantizeLinear") == 1, census
    # the head quantized too: no float compute left, a Q/DQ pair around the pooling and one before the softmax
    whole = kernel_census(to_int8(fp32, frames, activations="uint8", float_head=False).SerializeToString())
    assert whole.float_fallback == 0 and whole.quantized == convs + gemms, whole
    assert whole.ops.get("QuantizeLinear") == 2 and whole.ops.get("DequantizeLinear") == 2, whole
    times = op_times_ms(model.SerializeToString(), frames[0][None, None], runs=2, warmup=1)
    assert "QLinearConv" in times and "Conv" not in times and all(t >= 0 for t in times.values())
    ops = [n.op_type for n in model.graph.node if n.op_type != "DequantizeLinear"]
    assert "QuantizeLinear" not in ops[:ops.index("Div")] and "Softmax" in ops



def test_uint8_activations_only_for_int8_onnx(cli, bundle1, tmp_path):
    result = cli("export", bundle1, "--out", tmp_path / "m.onnx", "--int8-activations", "uint8")
    assert result.exit_code == 1 and "TensorRT" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _fp32_graph(bundle):
    from socketedge.export import onnx_export

    fused, _ = fuse(load_bundle(bundle)[0])
    return onnx_export.graph_of(fused)


def test_mixed_precision_keeps_the_most_sensitive_layers_float(trained_bundle):
    from socketedge.export import precision

    g, frames = _fp32_graph(trained_bundle), calibration_frames(trained_bundle)
    ref = precision.run_probs(g, frames)
    with precision.Int8Builder(g, frames, "uint8", float_head=False) as builder:
        assert len(builder.compute_nodes) == 5  # 3 convolutions, the bottleneck and the classifier
        ranking = precision.layer_sensitivity(builder, frames[:8], ref[:8])
        assert [n for n, _ in ranking] != [] and sorted(n for n, _ in ranking) == sorted(builder.compute_nodes)
        assert all(e >= 0 for _, e in ranking) and ranking[0][1] >= ranking[-1][1]
        # one layer quantized alone: only it becomes an int8 kernel
        alone = kernel_census(builder.build(only=ranking[0][0]).SerializeToString())
        assert alone.quantized == 1 and alone.float_fallback == 4
        full = precision.run_probs(builder.build(), frames)
        full_tv = 0.5 * np.abs(full - ref).sum(1).mean()
        # a bound the fully quantized graph misses but a float layer or two meets
        graph, record = precision.mixed_int8(builder, frames, ref, min_agreement=0.0, max_prob_error=full_tv * 0.999,
                                             ranking=ranking)
    assert record["steps"][0]["float_nodes"] == 1
    if graph is None:  # no mix of ≤ 2 float layers (half of 5) got below: the search says so and stops
        assert len(record["steps"]) == 2 and "float_nodes" not in record
        return
    kept = record["float_nodes"]
    assert kept == [n for n, _ in ranking[: len(kept)]] and record["steps"][-1]["mean_tv"] <= full_tv * 0.999
    census = kernel_census(graph.SerializeToString())
    assert census.float_fallback == len(kept) and census.quantized == 5 - len(kept)


def test_percentile_calibration_builds_and_agrees(trained_bundle):
    from socketedge.export import precision

    g, frames = _fp32_graph(trained_bundle), calibration_frames(trained_bundle)
    ref = precision.run_probs(g, frames)
    got = precision.run_probs(precision.to_int8(g, frames, "uint8", calibration="percentile"), frames)
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9
    with pytest.raises(ValueError, match="calibration must be one of"):
        precision.Int8Builder(g, frames, "uint8", calibration="kl")


def _activation_scales(model: onnx.ModelProto) -> dict[str, float]:
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: float(init[n.input[1]]) for n in model.graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in init and init[n.input[1]].size == 1}


def test_entropy_calibration_clips_ranges_minmax_keeps(trained_bundle):
    """calibration="entropy" is onnxruntime's KL calibrator with a histogram it can search (quantize_static alone
    builds 128 bins for 128 quantized ones, which leaves one candidate — the full range — so its "entropy"
    ranges were MinMax's): never wider than MinMax's, narrower on some tensors."""
    from socketedge.export import precision

    g, frames = _fp32_graph(trained_bundle), calibration_frames(trained_bundle)
    minmax = _activation_scales(precision.to_int8(g, frames, "uint8"))
    entropy = _activation_scales(precision.to_int8(g, frames, "uint8", calibration="entropy"))
    assert entropy.keys() == minmax.keys() and len(minmax) >= 4  # the input and each convolution's output
    assert all(entropy[t] <= minmax[t] * (1 + 1e-6) for t in minmax)
    assert sum(entropy[t] < 0.99 * minmax[t] for t in minmax) >= 1


def test_stem_nodes_read_the_preprocessed_frame_and_can_stay_float(trained_bundle):
    """precision.stem_nodes: the first convolution of each source, the one fed by the float preprocessing; kept
    float32 it is a float kernel fed the float frame (no DequantizeLinear in front), every other layer stays int8."""
    from socketedge.export import precision

    g, frames = _fp32_graph(trained_bundle), calibration_frames(trained_bundle)
    with precision.Int8Builder(g, frames[:8], "uint8", float_head=False) as builder:
        assert builder.stem_nodes == builder.compute_nodes[:1]  # one source: its first convolution only
        assert precision.stem_nodes(g) == builder.stem_nodes
        kept = builder.build(builder.stem_nodes)
    producers = {o: n for n in kept.graph.node for o in n.output}
    stem = next(n for n in kept.graph.node if n.name == builder.stem_nodes[0])
    assert stem.op_type == "Conv" and producers[stem.input[0]].op_type not in ("DequantizeLinear", "QuantizeLinear")
    assert producers[stem.input[0]].name in precision.float32_regions(g)  # straight from the preprocessing
    census = kernel_census(kept.SerializeToString())
    assert census.float_fallback == 1 and census.quantized == 4, census


def test_a_layer_kept_float_between_int8_layers_runs_float(trained_bundle):
    """A convolution kept float32 between two quantized ones (DequantizeLinear → Conv → QuantizeLinear) is what
    onnxruntime's WeightBiasQuantization transformer would re-quantize, per tensor, when a session loads it;
    socketedge's sessions turn that transformer off (metadata.ORT_DISABLED_OPTIMIZERS), so mixed precision's float
    layers really run float, in the census and in the runtime backend alike."""
    from socketedge.export import precision

    g, frames = _fp32_graph(trained_bundle), calibration_frames(trained_bundle)
    with precision.Int8Builder(g, frames[:8], "uint8", float_head=False) as builder:
        middle = builder.compute_nodes[1]
        graph = builder.build([middle])
    producers = {o: n for n in graph.graph.node for o in n.output}
    node = next(n for n in graph.graph.node if n.name == middle)
    assert producers[node.input[0]].op_type == "DequantizeLinear"  # the pattern the transformer matches
    census = kernel_census(graph.SerializeToString())
    assert census.float_fallback == 1 and census.quantized == 4, census
    assert "Conv" in op_times_ms(graph.SerializeToString(), frames[0][None, None], runs=1, warmup=0)


def test_export_int8_float_stem(cli, trained_bundle, tmp_path):
    """--int8-float-stem: the stem convolution reads the float depth and runs float, the head is float as always,
    every other convolution an int8 kernel; the card says which layers stayed float. Only for int8 graphs."""
    out = tmp_path / "stem.onnx"
    result = cli("export", trained_bundle, "--out", out, "--precision", "int8", "--int8-activations", "uint8",
                 "--int8-float-stem")
    assert result.exit_code == 0, result.stderr
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
    assert card.extra["int8_float_layers"] == ["stem", "head"] and card.extra["int8_activations"] == "uint8"
    census = kernel_census(str(out))
    assert census.quantized == 2 and census.float_fallback == 3, census  # 3 convolutions, 2 linear layers
    refused = cli("export", trained_bundle, "--out", tmp_path / "f.onnx", "--int8-float-stem")
    assert refused.exit_code == 1 and "--precision int8" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
