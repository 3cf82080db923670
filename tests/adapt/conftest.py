"""Fixtures shared by the adaptation tests."""

import pytest
import torch

from socketedge.models.checkpoint import save_source
from socketedge.models.source_model import new_source_model


@pytest.fixture
def adapt_data(make_dataset, tmp_path):
    """Two tiny_cnn sources with non-trivial BN running statistics, unlabeled target depth, TI pairs of other
    classes: (sources, target root, ti root)."""
    torch.manual_seed(0)
    sources = []
    for i in range(2):
        m = new_source_model("tiny_cnn", ["a", "b", "c", "d"])
        m.train()
        m(torch.randn(16, 3, 32, 32))  # non-trivial running statistics
        sources.append(save_source(m.eval(), tmp_path / f"s{i}.ckpt"))
    target = make_dataset("target", per_class=6, modalities=("depth",), labeled=False, seed=1)
    ti = make_dataset("ti", classes=("e", "f", "g"), per_class=6, modalities=("rgb", "depth"), seed=2)
    return sources, target, ti
