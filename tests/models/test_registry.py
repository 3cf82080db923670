import pytest
import torch

from socketedge.errors import UnknownNameError
from socketedge.models.backbones import BACKBONES, build_backbone, get_backbone
from socketedge.registry import Registry


def test_unknown_backbone_lists_valid_names_and_closest_match():
    with pytest.raises(UnknownNameError) as e:
        get_backbone("resnet51")
    msg = str(e.value)
    assert "did you mean 'resnet50'" in msg
    for name in ("resnet18", "mobilenet_v3_small", "efficientnet_lite0", "tiny_cnn"):
        assert name in msg


def test_unknown_name_without_close_match_still_lists_names():
    with pytest.raises(UnknownNameError, match="valid: .*resnet18") as e:
        get_backbone("zzzz")
    assert "did you mean" not in str(e.value)


def test_duplicate_registration_raises():
    reg = Registry("thing")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)


def test_required_architectures_registered():
    expected = {"resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
                "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "tiny_cnn"}
    assert expected <= set(BACKBONES.names())


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "efficientnet_lite0",
                                  "tiny_cnn"])
def test_backbone_feature_dim(name):
    spec = get_backbone(name)
    net = build_backbone(name).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, spec.feature_dim)
