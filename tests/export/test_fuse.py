"""The fused module computes exactly what the ensemble computes, with BatchNorm folded and plain classifiers."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from socketedge.data.preprocess import preprocessing_for
from socketedge.fuse import fold_batchnorm, fuse, inference_network
from socketedge.models.ensemble import Ensemble, Member
from socketedge.models.source_model import new_source_model

from export_helpers import CLASSES, random_ensemble


def depth_frames(n: int, h: int = 37, w: int = 51, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 7000, (n, 1, h, w), generator=g, dtype=torch.int32).to(torch.uint16)


@pytest.mark.parametrize("n,zeta", [(1, None), (2, [0.3, 0.7]), (3, [0.5, 0.2, 0.3])])
def test_fused_equals_ensemble(n, zeta):
    ensemble = random_ensemble(n, zeta=zeta)
    fused, reports = fuse(ensemble)
    x = depth_frames(5)
    with torch.no_grad():
        expected = ensemble(x)
        probs, label = fused(x)
    assert probs.shape == (5, len(CLASSES)) and label.dtype == torch.int64
    torch.testing.assert_close(probs, expected, atol=1e-6, rtol=1e-5)
    assert torch.equal(label, probs.argmax(1))
    assert len(fused.branches) == n
    assert all(r.batchnorm_folded == 4 and r.batchnorm_left == 0 for r in reports)  # 3 conv BN + bottleneck BN1d


def test_fused_module_is_plain_and_original_untouched():
    ensemble = random_ensemble(2, zeta=[0.4, 0.6])
    fused, reports = fuse(ensemble)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    assert not any(parametrize.is_parametrized(m) for m in fused.modules())
    assert all(r.parametrizations_removed == 1 for r in reports)
    assert fused.zeta == pytest.approx([0.4, 0.6]) and all(isinstance(z, float) for z in fused.zeta)
    # the ensemble keeps its weight-normalised classifiers and BatchNorms (fusing works on copies)
    for m in ensemble.members:
        assert parametrize.is_parametrized(m.model.classifier)
        assert any(isinstance(x, nn.BatchNorm2d) for x in m.model.modules())
    with torch.no_grad():
        ensemble(depth_frames(2))


def test_shared_preprocessing_and_single_branch():
    fused, _ = fuse(random_ensemble(2))
    assert len(fused.preprocess) == 1 and fused.branch_preprocess == [0, 0]  # same input size and statistics
    single, _ = fuse(random_ensemble(2, zeta=[0.0, 1.0]))  # a zero-weight source contributes nothing
    assert len(single.branches) == 1 and single.zeta == [1.0]
    ensemble = random_ensemble(2, zeta=[0.0, 1.0])
    with torch.no_grad():
        torch.testing.assert_close(single(depth_frames(3))[0], ensemble(depth_frames(3)), atol=1e-6, rtol=1e-5)


def test_uint8_modalities():
    ensemble = random_ensemble(2, modality="nir")
    fused, _ = fuse(ensemble)
    x = torch.randint(0, 256, (4, 1, 30, 44), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(fused(x)[0], ensemble(x), atol=1e-6, rtol=1e-5)


def test_fold_batchnorm_efficientnet_lite_same_padding():
    """SAME-padding convolutions compute their padding from the input shape: they stay leaf modules and their
    BatchNorms still fold."""
    torch.manual_seed(0)
    model = new_source_model("efficientnet_lite0", CLASSES, input_size=64).eval()
    net, report = inference_network(model)
    assert report.batchnorm_left == 0 and report.batchnorm_folded > 40
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), atol=1e-4, rtol=1e-4)


def test_untraceable_network_keeps_batchnorm():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                return self.bn(self.conv(x))
            return self.conv(x)

    net, report = fold_batchnorm(Branchy().eval())
    assert report.batchnorm_left == 1 and report.batchnorm_folded == 0 and "not traceable" in report.notes[0]


def test_member_with_other_input_size_gets_own_preprocessing():
    torch.manual_seed(0)
    a = new_source_model("tiny_cnn", CLASSES)
    b = new_source_model("tiny_cnn", CLASSES, input_size=48)
    ensemble = Ensemble([Member(m, preprocessing_for(m.meta, "depth")) for m in (a, b)]).eval()
    fused, _ = fuse(ensemble)
    assert len(fused.preprocess) == 2 and fused.branch_preprocess == [0, 1]
    x = depth_frames(3)
    with torch.no_grad():
        torch.testing.assert_close(fused(x)[0], ensemble(x), atol=1e-6, rtol=1e-5)
