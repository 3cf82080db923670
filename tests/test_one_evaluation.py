"""One evaluation, one number: the accuracy `adapt` reports for its bundle, `eval` of that bundle and the exported
graph under `socketedge run --source folder://DIR` see the same pixels of the same frames — native-resolution
frames through the model's own Preprocess — and so agree frame for frame.

The folder's frames are neither square nor at the model's input size, and not all of one size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from socketedge.adapt.run import Adapter
from socketedge.data.imageio import write_image
from socketedge.data.testing import class_image

CLASSES = ["a", "b", "c", "d"]
SHAPES = ((40, 48), (36, 52))  # (H, W): two sizes in one folder, neither square nor the input size (32)


def write_depth_folder(root: Path, per_class: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for ci, name in enumerate(CLASSES):
        for i in range(per_class):
            h, w = SHAPES[i % len(SHAPES)]
            _, depth = class_image(ci, rng, max(h, w))
            write_image(root / "depth" / name / f"{name}_{i:04d}.png", np.ascontiguousarray(depth[:h, :w]))
    return root / "depth"


@pytest.fixture(scope="module")
def torch_one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def adapted(tmp_path_factory, torch_one_thread):
    """(folder, bundle, adapt result, adapter): a tiny source adapted (SHOT, 2 epochs) on the folder, labels on."""
    from socketedge.adapt.config import AdaptConfig
    from socketedge.models.checkpoint import save_source
    from socketedge.models.source_model import new_source_model

    tmp = tmp_path_factory.mktemp("one_eval")
    folder = write_depth_folder(tmp / "data")
    torch.manual_seed(0)
    model = new_source_model("tiny_cnn", CLASSES)
    model.train()
    model(torch.randn(16, 3, 32, 32))  # non-trivial BatchNorm running statistics
    source = save_source(model.eval(), tmp / "source.ckpt")
    cfg = AdaptConfig(sources=[source], target=folder, labels=folder, out=tmp / "bundle", method="shot",
                      epochs=2, batch_size=8, device="cpu", show_progress=False)
    adapter = _CountingAdapter(cfg)
    return folder, cfg.out, adapter.run(), adapter


class _CountingAdapter(Adapter):
    """Counts the passes over the target, and checks each reused one against a fresh pass."""

    def __init__(self, cfg):
        self.passes, self.reused = 0, 0
        super().__init__(cfg)

    def _target_pass(self):
        self.passes += 1
        return super()._target_pass()

    def compute_pseudo_labels(self):
        cached = self._next_pass
        if cached is not None:
            self.reused += 1
            fresh = Adapter._target_pass(self)  # not counted: the pass the reuse saves
            assert all(torch.equal(a, b) for a, b in zip(cached[0], fresh[0])) and torch.equal(cached[1], fresh[1])
        return super().compute_pseudo_labels()


def test_native_batches_keep_order_and_group_sizes(tmp_path):
    from socketedge.data.cache import native_batches
    from socketedge.data.folders import labeled_folder
    from socketedge.data.imageio import read_image

    images = labeled_folder(write_depth_folder(tmp_path / "data", per_class=3), "depth")
    seen = []
    for rows, raw in native_batches(images, batch_size=5):
        assert raw.dtype == torch.uint16 and raw.shape[1] == 1 and tuple(raw.shape[2:]) in SHAPES
        for r, frame in zip(rows.tolist(), raw):
            assert np.array_equal(frame[0].numpy(), read_image(images.items[r].path, "depth"))
            seen.append(r)
    assert sorted(seen) == list(range(len(images)))


def test_predict_over_a_folder_equals_frame_by_frame(adapted):
    from socketedge.data.folders import labeled_folder
    from socketedge.data.imageio import read_image
    from socketedge.models.bundle import load_bundle
    from socketedge.models.predict import predict

    folder, bundle, *_ = adapted
    ensemble = load_bundle(bundle)[0]
    images = labeled_folder(folder, "depth", CLASSES)
    got = predict(ensemble, images, batch_size=3, features=True)
    for i, item in enumerate(images.items):
        raw = torch.from_numpy(read_image(item.path, "depth").astype(np.int32))[None, None]
        one = predict(ensemble, raw, features=True)
        torch.testing.assert_close(got.probs[i], one.probs[0], atol=1e-6, rtol=0)
        torch.testing.assert_close(got.features[0][i], one.features[0][0], atol=1e-5, rtol=1e-5)
        with torch.no_grad():
            torch.testing.assert_close(got.probs[i], ensemble.eval()(raw)[0], atol=1e-6, rtol=0)


def test_adapt_report_eval_and_exported_graph_agree(adapted, tmp_path):
    from socketedge.data.folders import labeled_folder
    from socketedge.evaluate import evaluate
    from socketedge.export.pipeline import ExportConfig, export_model
    from socketedge.models.loading import load_ensemble
    from socketedge.models.predict import predict
    from socketedge.runtime.loop import RunConfig, run

    folder, bundle, result, _ = adapted
    final = result.metrics["history"][-1]
    metrics = evaluate([bundle], folder, device="cpu", out=tmp_path / "eval", show_progress=False)
    assert final["target_accuracy"] == metrics["accuracy"]  # the target folder is labeled
    assert final["accuracy"] == metrics["accuracy"]  # --labels: the same folder

    images = labeled_folder(folder, "depth", CLASSES)
    probs = predict(load_ensemble([bundle]), images).probs
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == [it.key for it in images.items]
    assert [r["pred"] for r in rows] == [CLASSES[i] for i in probs.argmax(1)]

    onnx = export_model(ExportConfig(model=bundle, out=tmp_path / "onnx" / "model.onnx")).onnx_path
    out = tmp_path / "run.jsonl"
    summary = run(RunConfig(model=onnx, source=f"folder://{folder}", provider="cpu", threads=1, console=False,
                            show=False, json_out=str(out)))
    assert summary.frames == len(images)
    live = [json.loads(line) for line in out.read_text().splitlines()]
    # folder:// reads DIR/<class>/<name> in sorted order, the order of the labeled folder
    assert [p["frame"] for p in live] == list(range(len(images)))
    graph = torch.tensor([p["raw_probs"] for p in live])
    assert torch.equal(graph.argmax(1), probs.argmax(1))
    torch.testing.assert_close(graph, probs, atol=1e-4, rtol=0)


def test_pseudo_labels_reuse_the_end_of_epoch_pass(adapted):
    *_, adapter = adapted
    # epoch 1: pseudo-labels at its start, the report at its end; epoch 2 reuses that for its pseudo-labels
    # (checked equal to a fresh pass), then its report: 3 passes instead of 4
    assert adapter.reused == 1 and adapter.passes == 3
