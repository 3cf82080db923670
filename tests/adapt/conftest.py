"""Fixtures shared by the adaptation tests."""

import pytest
import torch

from socketedge.adapt.bn_stats import reestimate_running_stats
from socketedge.data.cache import decode_set
from socketedge.data.folders import paired_folder
from socketedge.data.preprocess import Preprocess, preprocessing_for
from socketedge.models.checkpoint import save_source
from socketedge.models.source_model import new_source_model


@pytest.fixture
def adapt_data(make_dataset, tmp_path):
    """Two tiny_cnn sources with non-trivial BN running statistics, unlabeled target depth, TI pairs of other
    classes: (sources, target root, ti root)."""
    torch.manual_seed(0)
    target = make_dataset("target", per_class=6, modalities=("depth",), labeled=False, seed=1)
    ti = make_dataset("ti", classes=("e", "f", "g"), per_class=6, modalities=("rgb", "depth"), seed=2)
    rgb = decode_set(paired_folder(ti, "rgb", "depth").a, 32, None, False).raw
    sources = []
    for i in range(2):
        m = new_source_model("tiny_cnn", ["a", "b", "c", "d"])
        # running statistics of RGB images, as a source trained on RGB has (random inputs would give
        # statistics no image matches); each source sees a different half, so the two differ
        reestimate_running_stats(m, [Preprocess(preprocessing_for(m.meta, "rgb"))(rgb[i::2])])
        sources.append(save_source(m.eval(), tmp_path / f"s{i}.ckpt"))
    return sources, target, ti
