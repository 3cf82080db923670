"""Procedural RGB-D scenes: one object per image, ray-cast in numpy, seen by a colour camera and a stereo depth
camera. The embedded default dataset (``socketedge synth``) and the ``synthetic://`` virtual camera."""

from socketedge.synth.dataset import SynthConfig, SynthResult, make_config, read_manifest, synthesize
from socketedge.synth.generate import ImageSpec, render_batch, render_one
from socketedge.synth.scene import SceneConfig, SensorConfig
from socketedge.synth.shapes import CATALOGUE, DEFAULT_TASK_CLASSES, DEFAULT_TI_CLASSES, SHAPES

__all__ = [
    "CATALOGUE", "DEFAULT_TASK_CLASSES", "DEFAULT_TI_CLASSES", "SHAPES", "ImageSpec", "SceneConfig",
    "SensorConfig", "SynthConfig", "SynthResult", "make_config", "read_manifest", "render_batch", "render_one",
    "synthesize",
]
