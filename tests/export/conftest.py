"""Fixtures for export tests: session-wide tiny bundles (random and trained) with a real depth target folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import depth_target, make_bundle, random_ensemble, train_tiny


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and OpenMP spin-waiting on a busy 2-core machine made a
    60-step training run 10× slower; onnxruntime sessions keep their own thread pools."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def export_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="session")
def target_dir(export_root) -> Path:
    return depth_target(export_root / "target")


@pytest.fixture(scope="session")
def bundle2(export_root, target_dir) -> Path:
    return make_bundle(export_root, "bundle2", random_ensemble(2, zeta=[0.35, 0.65]), target_dir)


@pytest.fixture(scope="session")
def bundle1(export_root, target_dir) -> Path:
    return make_bundle(export_root, "bundle1", random_ensemble(1, seed=1), target_dir)


@pytest.fixture(scope="session")
def trained_bundle(export_root) -> Path:
    target = depth_target(export_root / "trained_target", per_class=8, seed=3)
    return make_bundle(export_root, "trained", train_tiny(target), target)


@pytest.fixture(scope="session")
def exported(bundle1, bundle2, export_root):
    """{n: (bundle, ExportResult)}: fp32 ONNX exports of the 1- and 2-source bundles."""
    from socketedge.export.pipeline import ExportConfig, export_model

    return {n: (bundle, export_model(ExportConfig(model=bundle, out=export_root / f"onnx{n}" / "model.onnx")))
            for n, bundle in ((1, bundle1), (2, bundle2))}
