"""`socketedge run` end to end on the real pieces: a bundle exported by `socketedge export`, frames replayed from
a `.db3` recording made with ``rs.software_device`` and from ``synthetic://``; the JSON lines must match the
offline `socketedge eval` predictions (and a direct onnxruntime run) frame for frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from runtime_fixtures import CLASSES

PER_CLASS = 3
SIZE = 32  # = the tiny model's input size, so neither eval nor the graph resizes


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny depth bundle (briefly fitted so its predictions vary), its labeled target folder, and its ONNX
    export with the model card."""
    import torch

    from socketedge.data.preprocess import preprocessing_for
    from socketedge.export.pipeline import ExportConfig, export_model
    from socketedge.models.bundle import save_bundle
    from socketedge.models.ensemble import Ensemble, Member
    from socketedge.models.source_model import new_source_model
    from socketedge.data.testing import write_dataset

    root = tmp_path_factory.mktemp("e2e")
    data = write_dataset(root / "target", CLASSES, PER_CLASS, ("depth",), seed=3, size=SIZE)
    torch.manual_seed(0)
    model = new_source_model("tiny_cnn", CLASSES, input_size=SIZE)
    ensemble = Ensemble([Member(model, preprocessing_for(model.meta, "depth"))])
    from socketedge.data.folders import labeled_folder
    from socketedge.data.imageio import read_image

    items = labeled_folder(data / "depth", "depth").items
    x = torch.from_numpy(np.stack([read_image(it.path, "depth")[None] for it in items]).astype(np.int32))
    y = torch.tensor([it.label for it in items])
    opt = torch.optim.Adam(ensemble.parameters(), 1e-2)
    ensemble.train()
    for _ in range(15):  # enough to make the classes differ; accuracy is not the point
        opt.zero_grad()
        torch.nn.functional.nll_loss(torch.log(ensemble(x) + 1e-8), y).backward()
        opt.step()
    ensemble.eval()
    bundle = save_bundle(root / "bundle", ensemble, "shot", {"target": str(data / "depth")})
    result = export_model(ExportConfig(model=bundle, out=root / "model.onnx", calib=data / "depth"))
    return {"root": root, "data": data / "depth", "bundle": bundle, "onnx": result.onnx_path, "items": items}


def _eval_rows(exported) -> list[dict]:
    from socketedge.evaluate import evaluate

    out = exported["root"] / "eval"
    evaluate([exported["bundle"]], exported["data"], out=out, device="cpu", show_progress=False)
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_on_a_realsense_recording_matches_offline_eval(exported, cli, tmp_path):
    pytest.importorskip("pyrealsense2", reason="pyrealsense2 is needed to write the .db3 recording")
    from socketedge.capture.testing import write_realsense_recording
    from socketedge.data.imageio import read_image

    rows = _eval_rows(exported)
    depth = [read_image(it.path, "depth") for it in exported["items"]]  # in eval's order
    assert [r["key"] for r in rows] == [it.key for it in exported["items"]]
    rec = write_realsense_recording(tmp_path / "rec.db3", depth, fps=30)
    out = tmp_path / "run.jsonl"
    res = cli("run", exported["onnx"], "--source", f"file://{rec.path}", "--json", out, "--quiet")
    assert res.exit_code == 0, res.stderr
    lines = _json_lines(out)
    assert len(lines) == len(rows) == len(CLASSES) * PER_CLASS
    for i, (line, row) in enumerate(zip(lines, rows)):
        assert line["label"] == row["pred"], f"frame {i}: run says {line['label']}, eval says {row['pred']}"
        assert line["score"] == pytest.approx(row["score"], abs=1e-4)
    assert len({line["label"] for line in lines}) > 1  # a model that says one class everywhere proves nothing
    # the summary on stderr counts what happened
    assert "frames classified" in res.stderr and f"{len(rows)} / 0" in res.stderr  # captured / dropped
    assert "end of stream" in res.stderr


def test_run_on_synthetic_camera_matches_onnxruntime(exported, cli, tmp_path):
    import onnxruntime as ort

    from socketedge.capture.base import open_source

    uri = "synthetic://?frames=10&size=48&seed=5"
    out = tmp_path / "syn.jsonl"
    res = cli("run", exported["onnx"], "--source", uri, "--json", out, "--smooth", "avg", "--window", "3", "-q")
    assert res.exit_code == 0, res.stderr
    lines = _json_lines(out)
    assert [line["frame"] for line in lines] == list(range(10))
    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    with open_source(uri) as src:
        direct = [session.run(["probs"], {"frames": f.depth[None, None]})[0][0] for f in src]
    assert len(direct) == 10
    for i, (line, probs) in enumerate(zip(lines, direct)):
        np.testing.assert_allclose(line["raw_probs"], probs, atol=1e-5)
        window = np.mean(direct[max(0, i - 2): i + 1], axis=0)  # --smooth avg --window 3
        np.testing.assert_allclose(line["probs"], window, atol=1e-5)
        assert line["label"] == CLASSES[int(window.argmax())]


def test_run_the_bundle_itself_with_the_torch_backend(exported, cli, tmp_path):
    """The debugging path: the bundle, not its export, on a folder of the same frames — same answers as eval."""
    rows = _eval_rows(exported)
    out = tmp_path / "torch.jsonl"
    res = cli("run", exported["bundle"], "--source", f"folder://{exported['data']}", "--json", out, "-q",
              "--provider", "cpu")
    assert res.exit_code == 0, res.stderr
    lines = _json_lines(out)
    assert [line["label"] for line in lines] == [r["pred"] for r in rows]


@pytest.mark.realsense
def test_run_on_the_first_realsense_camera(exported, cli, tmp_path):
    rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 is not installed (socketedge[realsense])")
    if len(rs.context().query_devices()) == 0:
        pytest.skip("no RealSense camera attached")
    out = tmp_path / "cam.jsonl"
    res = cli("run", exported["onnx"], "--camera", "--json", out, "--max-frames", "30", "-q", "--headless")
    assert res.exit_code == 0, res.stderr
    lines = _json_lines(out)
    assert len(lines) == 30 and all(line["label"] in CLASSES for line in lines)
    assert "max frames" in res.stderr


@pytest.mark.tensorrt
def test_tensorrt_engine_runs_like_its_onnx(exported, cli, tmp_path):
    """An engine built by the exporter (int32 input, sidecar card) gives the ONNX's answers through `run`."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install 'socketedge[tensorrt]')")
    from socketedge.export.metadata import ModelCard
    from socketedge.export.tensorrt import build_engine
    from socketedge.runtime.backends import open_backend

    import onnxruntime as ort

    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    card = ModelCard.from_props(dict(session.get_modelmeta().custom_metadata_map))
    try:
        build_engine(exported["onnx"], tmp_path / "model.engine", card, (SIZE, SIZE), max_batch=4)
    except Exception as e:  # noqa: BLE001 - no GPU / driver for the builder
        pytest.skip(f"TensorRT cannot build an engine here: {e}")
    out_trt, out_onnx = tmp_path / "trt.jsonl", tmp_path / "onnx.jsonl"
    folder = f"folder://{exported['data']}"
    assert cli("run", tmp_path / "model.engine", "--source", folder, "--json", out_trt, "-q").exit_code == 0
    assert cli("run", exported["onnx"], "--source", folder, "--json", out_onnx, "-q").exit_code == 0
    for a, b in zip(_json_lines(out_trt), _json_lines(out_onnx), strict=True):
        np.testing.assert_allclose(a["probs"], b["probs"], atol=1e-3)
    with open_backend(tmp_path / "model.engine") as engine:
        assert engine.on_gpu and engine.providers[0].startswith("TensorRT") and engine.card.input_dtype == "int32"
