"""The other direction (paper Table 6, NIR → RGB), end to end through the CLI: a source trained on NIR images
(recorded in its checkpoint), adapted to colour frames with TI pairs used the other way round (NIR → ψ, RGB →
the encoder being adapted), exported as a graph taking 8-bit 3-channel frames, and `run` on a folder of colour
frames agreeing with `eval` frame for frame."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from socketedge.data.imageio import write_image
from socketedge.data.testing import class_image

CLASSES = ["a", "b", "c", "d"]
TI_CLASSES = ["e", "f"]
SHAPES = ((40, 48), (36, 52))  # (H, W): colour frames of two sizes, neither square nor the input size


def _write_pairs(root: Path, classes: list[str], offset: int, per_class: int, seed: int) -> Path:
    """ROOT/{rgb,nir}/<class>/<stem>.png: colour frames and their NIR partner (the red channel, as RGB-NIR Scene's
    single-channel NIR files look next to their colour shot)."""
    rng = np.random.default_rng(seed)
    for ci, name in enumerate(classes):
        for i in range(per_class):
            h, w = SHAPES[i % len(SHAPES)]
            rgb, _ = class_image(ci + offset, rng, max(h, w))
            rgb = np.ascontiguousarray(rgb[:h, :w])
            write_image(root / "rgb" / name / f"{name}_{i:03d}.png", rgb)
            write_image(root / "nir" / name / f"{name}_{i:03d}.png", np.ascontiguousarray(rgb[..., 0]))
    return root


def test_nir_source_adapted_to_rgb_exported_and_run_on_colour_frames(cli, tmp_path, no_plots):
    torch.set_num_threads(1)
    task = _write_pairs(tmp_path / "task", CLASSES, 0, per_class=6, seed=0)
    ti = _write_pairs(tmp_path / "ti", TI_CLASSES, 0, per_class=6, seed=1)
    src, bundle, onnx_path = tmp_path / "nir.ckpt", tmp_path / "bundle", tmp_path / "model.onnx"

    r = cli("train-source", "--data", task / "nir", "--modality", "nir", "--arch", "tiny_cnn", "--out", src,
            "--epochs", "2", "--min-steps", "0", "--batch-size", "8", "--device", "cpu")
    assert r.exit_code == 0, r.stderr
    from socketedge.models.checkpoint import read_source_meta

    assert read_source_meta(src).modality == "nir"

    # an RGB target folder is a target now (the source is NIR); the source's own modality is not
    same = cli("adapt", "--source", src, "--target", task / "nir", "--out", tmp_path / "same", "--method", "shot",
               "--device", "cpu")
    assert same.exit_code == 1 and len(same.stderr.strip().splitlines()) == 1
    assert "nir images, the modality the source models were trained on" in same.stderr

    r = cli("adapt", "--source", src, "--target", task / "rgb", "--ti", ti, "--out", bundle, "--epochs", "2",
            "--batch-size", "8", "--device", "cpu", "--labels", task / "rgb")
    assert r.exit_code == 0, r.stderr
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["modality"] == "rgb" and manifest["config"]["source_modality"] == "nir"
    assert manifest["preprocessing"][0]["modality"] == "rgb"
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert metrics["history"][-1]["ti"] > 0  # the TI term ran

    # the TI pairs the other way round: ψ from the NIR side through the frozen NIR source, RGB into the encoder
    from socketedge.adapt.config import AdaptConfig
    from socketedge.adapt.run import Adapter

    adapter = Adapter(AdaptConfig(sources=[src], target=task / "rgb", ti=ti, out=tmp_path / "probe", epochs=1,
                                  batch_size=8, device="cpu", show_progress=False, ti_holdout=0.0))
    assert adapter.source_modality == "nir" and adapter.modality == "rgb"
    assert adapter.ti_tgt.raw.shape[1] == 3
    assert adapter.ti_src is None  # freed once ψ is computed
    assert adapter.src_pre[0].spec.modality == "nir" and adapter.ti_pre[0].spec.modality == "rgb"
    from socketedge.data.cache import decode_set, split_indices
    from socketedge.data.folders import paired_folder

    pairs = paired_folder(ti, "nir", "rgb")
    order = split_indices(len(pairs), [0.0, 1.0], 0)[1]  # the adapter's TI training order (no hold-out, seed 0)
    nir = decode_set(pairs.a.subset(order), adapter.size, None, False).raw
    assert nir.shape[1] == 1
    with torch.no_grad():
        psi = adapter.frozen[0].encoder(adapter.src_pre[0](nir, sized=True))  # decoded at size: resized once
    torch.testing.assert_close(adapter.psi[0], psi, atol=1e-5, rtol=1e-5)

    r = cli("export", bundle, "--out", onnx_path)
    assert r.exit_code == 0, r.stderr
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.type == "tensor(uint8)" and inp.shape[1] == 3

    ev = cli("eval", bundle, "--data", task / "rgb", "--out", tmp_path / "eval", "--device", "cpu")
    assert ev.exit_code == 0, ev.stderr
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    run_json = tmp_path / "run.jsonl"
    r = cli("run", onnx_path, "--source", f"folder://{task / 'rgb'}", "--provider", "cpu", "--json", run_json,
            "--quiet", "--headless")
    assert r.exit_code == 0, r.stderr
    live = [json.loads(line) for line in run_json.read_text().splitlines()]
    assert len(live) == len(rows) == len(CLASSES) * 6
    assert [CLASSES[int(np.argmax(p["raw_probs"]))] for p in live] == [row["pred"] for row in rows]  # frame for frame
    final = metrics["history"][-1]["accuracy"]
    accuracy = 100.0 * np.mean([row["pred"] == row["key"].split("/")[0] for row in rows])
    assert accuracy == pytest.approx(final)
