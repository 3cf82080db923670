"""End to end: a CNN trained on synthetic RGB is good on RGB and poor on depth of the same scenes, while depth
itself is learnable (slow: trains two small networks)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from socketedge.synth import synthesize

    root = tmp_path_factory.mktemp("gap")
    train = synthesize(root / "train", per_class=80, eval_per_class=80, target_per_class=1, ti_per_class=1,
                       size=32, seed=0, progress=False).out
    test = synthesize(root / "test", per_class=1, eval_per_class=40, target_per_class=1, ti_per_class=1,
                      size=32, seed=1, progress=False).out
    return root, train, test


def _train(data: Path, out: Path, modality: str) -> Path:
    from socketedge.models.train import TrainSourceConfig, train_source

    # from scratch, so the backbone learns at the full rate (the 0.1x default is for pretrained backbones)
    ckpt, _ = train_source(TrainSourceConfig(data=data, out=out, arch="tiny_cnn_wide", modality=modality,
                                             epochs=12, input_size=32, lr=0.05, backbone_lr_mult=1.0,
                                             show_progress=False))
    return Path(ckpt)


def test_rgb_model_loses_most_of_its_accuracy_on_depth_and_depth_is_learnable(data):
    from socketedge.evaluate import evaluate

    root, train, test = data
    rgb_model = _train(train / "source", root / "rgb.ckpt", "rgb")
    depth_model = _train(train / "eval" / "depth", root / "depth.ckpt", "depth")
    acc = {name: evaluate([model], test / "eval", modality=m, show_progress=False)["accuracy"]
           for name, model, m in (("rgb_on_rgb", rgb_model, "rgb"), ("rgb_on_depth", rgb_model, "depth"),
                                  ("depth_on_depth", depth_model, "depth"))}
    # measured (2 CPUs): rgb_on_rgb 47.5, rgb_on_depth 13.3, depth_on_depth 27.9 (chance 16.7). A 3-layer CNN at
    # 32 px learns depth silhouettes only weakly; resnet18 at 64 px does much better (see the synth note).
    chance = 100 / 6
    assert acc["rgb_on_rgb"] > 2.2 * chance, acc
    assert acc["rgb_on_depth"] < acc["rgb_on_rgb"] - 20, acc
    assert acc["depth_on_depth"] > 1.3 * chance, acc
