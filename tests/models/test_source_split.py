"""Which encoder parameters train at the head rate and which at the trunk's 0.1×."""

from socketedge.models.backbones import get_backbone
from socketedge.models.source_model import new_source_model, wrap_torchvision_classifier


def _head_names(model) -> list[str]:
    head = {id(p) for p in model.head_parameters()}
    return [n for n, p in model.encoder.named_parameters() if id(p) in head]


def test_imported_classifier_gives_its_top_layer_the_head_rate():
    for arch, expected in (("resnet18", ["layer4.1.conv2.weight", "layer4.1.bn2.weight", "layer4.1.bn2.bias"]),
                           ("tiny_cnn", ["features.6.weight", "features.7.weight", "features.7.bias"])):
        full = get_backbone(arch).classifier(3)
        model = wrap_torchvision_classifier(arch, full.state_dict(), ["a", "b", "c"])
        assert _head_names(model) == expected
        trunk, head = model.backbone_parameters(), model.head_parameters()
        assert len(trunk) + len(head) == len(list(model.encoder.parameters()))
        assert not {id(p) for p in trunk} & {id(p) for p in head}


def test_trained_source_keeps_the_bottleneck_as_its_head():
    model = new_source_model("tiny_cnn", ["a", "b"])
    assert all(n.startswith("1.") for n in _head_names(model))  # encoder = Sequential(backbone, bottleneck)
