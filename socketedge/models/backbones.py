"""Backbone registry: name → feature extractor mapping (B, 3, H, W) images to (B, d) pooled features.

Each entry also knows the ordinary torchvision-style classifier for that architecture, so that
`import-source` can load a user's own `model.pth` and split it at the last linear layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from socketedge.errors import ConfigError, ModelError
from socketedge.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    feature_dim: int
    #: build(pretrained) → module whose output is (B, feature_dim)
    build: Callable[[bool], nn.Module]
    #: classifier(num_classes) → the architecture's usual full classifier (ends in nn.Linear)
    classifier: Callable[[int], nn.Module]
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pretrained_source: str = "torchvision"  # where --pretrained weights come from
    tags: tuple[str, ...] = field(default_factory=tuple)


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def get_backbone(name: str) -> BackboneSpec:
    return BACKBONES.get(name)


def build_backbone(name: str, pretrained: bool = False) -> nn.Module:
    return get_backbone(name).build(pretrained)


def last_linear(model: nn.Module) -> tuple[str, nn.Linear]:
    """The last nn.Linear registered in ``model`` (torchvision classifiers end in one)."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ModelError(f"{type(model).__name__} has no nn.Linear layer to split encoder and classifier at")
    return found[-1]


def replace_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def strip_head(model: nn.Module) -> nn.Module:
    """Remove the final classification layer so the model emits its penultimate features (for MobileNetV3
    that keeps the pretrained hidden Linear + Hardswish of its classifier in the trunk)."""
    name, _ = last_linear(model)
    replace_module(model, name, nn.Identity())
    return model


# ---------------------------------------------------------------- torchvision architectures


def _torchvision(name: str, feature_dim: int, weights_enum: str) -> None:
    import torchvision.models as tvm

    ctor = getattr(tvm, name)

    def classifier(num_classes: int) -> nn.Module:
        return ctor(weights=None, num_classes=num_classes)

    def build(pretrained: bool) -> nn.Module:
        if not pretrained:
            return strip_head(ctor(weights=None))
        weights = getattr(tvm, weights_enum).DEFAULT
        try:
            model = ctor(weights=weights)
        except Exception as e:  # network errors come in many types
            raise ModelError(
                f"could not get torchvision's pretrained {name} weights ({type(e).__name__}: {e}); "
                "they download once into ~/.cache/torch — connect to the internet or omit --pretrained"
            ) from None
        return strip_head(model)

    BACKBONES.register(name, BackboneSpec(name, feature_dim, build, classifier))


_torchvision("resnet18", 512, "ResNet18_Weights")
_torchvision("resnet34", 512, "ResNet34_Weights")
_torchvision("resnet50", 2048, "ResNet50_Weights")
_torchvision("mobilenet_v3_small", 1024, "MobileNet_V3_Small_Weights")
_torchvision("mobilenet_v3_large", 1280, "MobileNet_V3_Large_Weights")
_torchvision("efficientnet_b0", 1280, "EfficientNet_B0_Weights")


# ---------------------------------------------------------------- tiny test backbones


class TinyCNN(nn.Module):
    """A few strided conv blocks: runs the whole pipeline in seconds at 32 px. ``norm`` picks BN or GroupNorm."""

    def __init__(self, width: int = 16, num_classes: int | None = None, batchnorm: bool = True):
        super().__init__()

        def norm(c: int) -> nn.Module:
            return nn.BatchNorm2d(c) if batchnorm else nn.GroupNorm(4, c)

        chans = [3, width, width * 2, width * 4]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), norm(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chans[-1], num_classes) if num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _tiny(name: str, width: int, batchnorm: bool) -> None:
    BACKBONES.register(
        name,
        BackboneSpec(
            name,
            width * 4,
            build=lambda pretrained: _no_pretrained(name, pretrained) or TinyCNN(width, batchnorm=batchnorm),
            classifier=lambda n: TinyCNN(width, num_classes=n, batchnorm=batchnorm),
            input_size=32,
            pretrained_source="none",
            tags=("test",),
        ),
    )


def _no_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ConfigError(f"backbone {name!r} has no pretrained weights; omit --pretrained")


_tiny("tiny_cnn", 16, batchnorm=True)
_tiny("tiny_cnn_wide", 32, batchnorm=True)
_tiny("tiny_cnn_nobn", 16, batchnorm=False)

# EfficientNet-Lite registers itself on import (weights from the `pretrained` extra).
from socketedge.models import efficientnet_lite as _efficientnet_lite  # noqa: E402,F401
