"""SourceModel = encoder f + classifier g, and the metadata that rebuilds one.

Two ways to split a network:
- ``bottleneck`` (SHOT/SOCKET): f = backbone → global pool → Linear(d, 256) → BatchNorm1d; g = weight-normalised
  Linear(256, C). What `train-source` produces.
- ``last_linear`` (bring-your-own): f = an ordinary torchvision classifier with its last nn.Linear replaced by
  Identity; g = that Linear. What `import-source` produces.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, Field, field_validator
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from socketedge.errors import ModelError
from socketedge.models.backbones import get_backbone, last_linear, replace_module

FORMAT_VERSION = 1
BOTTLENECK_DIM = 256
# Smaller inputs vanish in the backbones' strided stages (a 1–7 px model trains on nothing): refused, not replaced
MIN_INPUT_SIZE = 16


class ModelMeta(BaseModel):
    """Everything needed to rebuild a source model and feed it correctly; travels inside the checkpoint."""

    format_version: int = FORMAT_VERSION
    kind: Literal["source"] = "source"
    arch: str
    split: Literal["bottleneck", "last_linear"] = "bottleneck"
    class_names: list[str]
    feature_dim: int  # encoder output size (bottleneck width, or the penultimate width)
    input_size: int = Field(ge=MIN_INPUT_SIZE)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    modality: str = "rgb"  # what the model was trained on
    train_config: dict = Field(default_factory=dict)
    metrics: dict = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)

    @field_validator("class_names")
    @classmethod
    def _classes(cls, v: list[str]) -> list[str]:
        if len(v) < 2:
            raise ValueError("a classifier needs at least 2 classes")
        if len(set(v)) != len(v):
            raise ValueError("class names must be unique")
        return v

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class Bottleneck(nn.Module):
    def __init__(self, in_dim: int, out_dim: int = BOTTLENECK_DIM):
        super().__init__()
        self.fc = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x))


class SourceModel(nn.Module):
    def __init__(self, encoder: nn.Module, classifier: nn.Module, meta: ModelMeta):
        super().__init__()
        self.encoder = encoder
        self.classifier = classifier
        self.meta = meta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encoder(x))

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters of the pretrained trunk (trained at 0.1× the learning rate of the rest).

        ``bottleneck``: everything before the bottleneck. ``last_linear`` (an imported classifier, no
        bottleneck): everything before the encoder's last weight layer — that layer and the normalisation
        after it play the bottleneck's part (the layer nearest the classifier, reshaped most by adaptation)
        and get the head rate."""
        if self.meta.split == "bottleneck":
            return list(self.encoder[0].parameters())
        head = {id(p) for p in _top_layer_parameters(self.encoder)}
        return [p for p in self.encoder.parameters() if id(p) not in head]

    def head_parameters(self) -> list[nn.Parameter]:
        trunk = {id(p) for p in self.backbone_parameters()}
        return [p for p in self.encoder.parameters() if id(p) not in trunk]


_WEIGHT_LAYERS = (nn.Linear, nn.modules.conv._ConvNd)


def _top_layer_parameters(encoder: nn.Module) -> list[nn.Parameter]:
    """The parameters of the encoder's last weight layer (Linear / Conv, in module order) and of every module
    registered after it (its BatchNorm, say)."""
    leaves = [m for m in encoder.modules() if not list(m.children()) and list(m.parameters(recurse=False))]
    last = max((i for i, m in enumerate(leaves) if isinstance(m, _WEIGHT_LAYERS)), default=len(leaves))
    return [p for m in leaves[last:] for p in m.parameters(recurse=False)]


def build_source_model(meta: ModelMeta, pretrained: bool = False) -> SourceModel:
    """A SourceModel with the architecture ``meta`` describes (random init unless ``pretrained``)."""
    spec = get_backbone(meta.arch)
    if meta.split == "bottleneck":
        encoder: nn.Module = nn.Sequential(spec.build(pretrained), Bottleneck(spec.feature_dim, meta.feature_dim))
        classifier: nn.Module = weight_norm(nn.Linear(meta.feature_dim, meta.num_classes), dim=0)
    else:
        encoder = spec.classifier(meta.num_classes)
        name, linear = last_linear(encoder)
        replace_module(encoder, name, nn.Identity())
        classifier = nn.Linear(linear.in_features, meta.num_classes)
    return SourceModel(encoder, classifier, meta)


def new_source_model(arch: str, class_names: list[str], pretrained: bool = False, input_size: int | None = None,
                     **meta_fields) -> SourceModel:
    spec = get_backbone(arch)
    meta = ModelMeta(arch=arch, split="bottleneck", class_names=list(class_names), feature_dim=BOTTLENECK_DIM,
                     input_size=spec.input_size if input_size is None else input_size, mean=spec.mean, std=spec.std, **meta_fields)
    return build_source_model(meta, pretrained=pretrained)


def wrap_torchvision_classifier(arch: str, state: dict[str, torch.Tensor], class_names: list[str],
                                input_size: int | None = None, mean=None, std=None) -> SourceModel:
    """Wrap an ordinary classifier's weights: encoder = everything before its last linear layer."""
    spec = get_backbone(arch)
    full = spec.classifier(len(class_names))
    linear_name, linear = last_linear(full)
    expected = linear.out_features
    got = state.get(f"{linear_name}.weight")
    if got is not None and got.shape[0] != expected:
        raise ModelError(
            f"the weights' last layer {linear_name!r} has {got.shape[0]} outputs but {len(class_names)} class names "
            "were given; the class list must have one name per output, in order")
    missing, unexpected = full.load_state_dict(state, strict=False)
    if missing or unexpected:
        what = "; ".join(x for x in (
            f"missing {len(missing)} (e.g. {missing[0]!r})" if missing else "",
            f"unexpected {len(unexpected)} (e.g. {unexpected[0]!r})" if unexpected else "") if x)
        raise ModelError(f"weights do not match architecture {arch!r}: {what}; check --arch")
    meta = ModelMeta(arch=arch, split="last_linear", class_names=list(class_names), feature_dim=linear.in_features,
                     input_size=spec.input_size if input_size is None else input_size, mean=tuple(mean or spec.mean),
                     std=tuple(std or spec.std))
    model = build_source_model(meta)
    encoder_state = {k: v for k, v in full.state_dict().items() if not k.startswith(linear_name + ".")}
    model.encoder.load_state_dict(encoder_state, strict=True)
    model.classifier.load_state_dict(linear.state_dict(), strict=True)
    return model


def batchnorm_layers(module: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [(n, m) for n, m in module.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
