"""Generate RGB-D images: sample scenes from per-image seeds, render them in batches, apply the camera models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from socketedge.errors import ConfigError
from socketedge.synth.render import render_scenes
from socketedge.synth.scene import SceneConfig, image_seed, sample_scene
from socketedge.synth.sensor import capture
from socketedge.synth.shapes import SHAPES


@dataclass(frozen=True)
class ImageSpec:
    """Which image to make: its seed is a pure function of these four values."""

    split: str
    cls: str
    index: int
    seed: int = 0


def render_batch(specs: list[ImageSpec], size: int, cfg: SceneConfig | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(B, size, size, 3) uint8 RGB and (B, size, size) uint16 depth in millimetres for images of one class."""
    cfg = cfg or SceneConfig()
    if not specs:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros((0, size, size), np.uint16)
    if len({s.cls for s in specs}) != 1:
        raise ValueError("render_batch renders one class at a time")
    if size < 8:
        raise ConfigError(f"image size {size} is too small; expected at least 8 pixels")
    SHAPES.get(specs[0].cls)  # unknown names fail with the valid ones
    scenes = [sample_scene(s.cls, np.random.default_rng(image_seed(s.seed, s.split, s.cls, s.index)), cfg)
              for s in specs]
    rendered = render_scenes(scenes, size, cfg.fov_deg)
    return capture(rendered, scenes, cfg.fov_deg, cfg.sensor)


def render_one(cls: str, index: int, size: int = 96, seed: int = 0, split: str = "eval",
               cfg: SceneConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One (rgb, depth) pair; the same arguments always give the same images."""
    rgb, depth = render_batch([ImageSpec(split, cls, index, seed)], size, cfg)
    return rgb[0], depth[0]
