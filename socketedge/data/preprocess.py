"""Modality preprocessing: data that travels with every model and one torch implementation of it.

raw frame (sensor units) → [0, 1] → 3 channels → resize to the model's input size → normalise with the source
model's RGB statistics. Depth: uint16 × depth_scale → metres → clip to [near, far] → (d - near) / (far - near).
NIR / thermal / RGB: uint8 / 255. The same module is used by training, eval and the exported graph.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ValidationError, model_validator
from torch import nn

from socketedge.data.imageio import MODALITIES
from socketedge.errors import ConfigError

DEFAULT_DEPTH_SCALE = 0.001  # metres per unit (RealSense D4xx, Azure Kinect: millimetres)
DEFAULT_DEPTH_RANGE = (0.3, 5.0)  # metres


class Preprocessing(BaseModel):
    modality: Literal["rgb", "depth", "nir", "thermal"]
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    depth_scale: float = DEFAULT_DEPTH_SCALE
    depth_near: float = DEFAULT_DEPTH_RANGE[0]
    depth_far: float = DEFAULT_DEPTH_RANGE[1]
    # metres outside this range are no measurement (0) before the clip: the sensor's valid range when a set's
    # depth comes from another camera than the model's target (task-irrelevant pairs of another dataset)
    depth_valid: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _check(self) -> "Preprocessing":
        if self.depth_scale <= 0:
            raise ValueError("depth_scale must be positive (metres per sensor unit)")
        if not 0 <= self.depth_near < self.depth_far:
            raise ValueError("depth range must satisfy 0 <= near < far (metres)")
        if self.depth_valid is not None and not 0 <= self.depth_valid[0] < self.depth_valid[1]:
            raise ValueError("valid depth range must satisfy 0 <= near < far (metres)")
        return self

    @property
    def channels(self) -> int:
        return 3 if self.modality == "rgb" else 1

    @property
    def raw_dtype(self) -> str:
        return "uint16" if self.modality == "depth" else "uint8"

    def module(self) -> "Preprocess":
        return Preprocess(self)


def preprocessing_for(model_meta, modality: str, depth_scale: float | None = None,
                      depth_range: tuple[float, float] | None = None, input_size: int | None = None) -> Preprocessing:
    """The preprocessing that feeds ``modality`` frames to a model described by ``model_meta``."""
    if modality not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    # None means "the default"; any value given (0 included) is used as given, or refused — never replaced
    near, far = DEFAULT_DEPTH_RANGE if depth_range is None else depth_range
    if depth_scale is not None and not depth_scale > 0:
        raise ConfigError(f"--depth-scale {depth_scale:g}: expected metres per depth unit > 0, e.g. 0.001 for "
                          "millimetres")
    if not 0 <= near < far:
        raise ConfigError(f"--depth-range {near:g},{far:g}: expected NEAR,FAR in metres with 0 <= NEAR < FAR, "
                          "e.g. 0.3,5")
    try:
        return Preprocessing(modality=modality,
                             input_size=model_meta.input_size if input_size is None else input_size,
                             mean=tuple(model_meta.mean), std=tuple(model_meta.std),
                             depth_scale=DEFAULT_DEPTH_SCALE if depth_scale is None else depth_scale,
                             depth_near=near, depth_far=far)
    except ValidationError as e:
        raise ConfigError("invalid preprocessing: " + "; ".join(err["msg"] for err in e.errors())) from None


AREA_FACTOR = 4


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) float → (B, C, size, size), approximately area-averaged: bilinear to AREA_FACTOR × size,
    then the mean of each AREA_FACTOR × AREA_FACTOR block.

    The graph's resize, and (through `data.cache`) the one training frames are decoded with, so training,
    evaluation and deployment see the same pixels. A plain bilinear resize point-samples a 640×480 frame
    shrunk 6× (an RGB source trained on area-resized images lost 25 points on its own training frames fed that
    way); torch's antialias=True exports but TensorRT's parser rejects antialiased Resize. Bilinear + average
    pooling with static factors exports with dynamic H/W and runs everywhere."""
    f = AREA_FACTOR
    x = F.interpolate(x, size=(f * size, f * size), mode="bilinear", align_corners=False)
    return F.avg_pool2d(x, f)


class Preprocess(nn.Module):
    """(B, C, H, W) raw frames of any numeric dtype → (B, 3, S, S) normalised float model input."""

    def __init__(self, spec: Preprocessing):
        super().__init__()
        self.spec = spec
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def unit(self, raw: torch.Tensor) -> torch.Tensor:
        x = raw.float()
        s = self.spec
        if s.modality == "depth":
            metres = x * s.depth_scale
            if s.depth_valid is not None:
                lo, hi = s.depth_valid
                metres = torch.where((metres >= lo) & (metres <= hi), metres, torch.zeros_like(metres))
            return (metres.clamp(s.depth_near, s.depth_far) - s.depth_near) * (1.0 / (s.depth_far - s.depth_near))
        return x * (1.0 / 255.0)

    def forward(self, raw: torch.Tensor, sized: bool = False) -> torch.Tensor:
        """``sized``: the frames were decoded by data.cache, which already applied `resize` (training crops, TI
        and held-out pairs, validation sets); at the input size they are not resized again. The resize is not
        the identity at equal size (bilinear ×4 then 4×4 mean is a [1/8, 3/4, 1/8] blur per axis), so resizing
        twice would train and measure on blurred pixels while `eval`, `run` and the exported graph see native
        frames resized once."""
        x = self.unit(raw)
        size = self.spec.input_size
        # the exported graph (sized=False) always resizes, even at the input size: it cannot branch on a shape
        if not (sized and tuple(x.shape[-2:]) == (size, size)):
            x = resize(x, size)
        if x.shape[1] == 1:  # after the resize: resizing one channel costs a third of resizing three
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std
