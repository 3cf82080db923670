"""Scene settings and per-image scene sampling: camera, object pose/size/material, floor, wall and light.

Coordinates are metres in a world frame with y up and the camera at the origin, pitched down and looking along
+z. Every image draws its scene from its own random generator, seeded from (seed, split, class, index), so one
image never depends on how many others were made or in which order.
"""

from __future__ import annotations

import colorsys
import zlib
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field, model_validator

from socketedge.synth.shapes import SHAPES, TEXTURES

Range = tuple[float, float]
FLOOR_TEXTURES = ("plain", "tiles", "planks")
WALL_TEXTURES = ("plain", "stripes")


class SensorConfig(BaseModel):
    """An active-stereo depth camera (RealSense D4xx-like) and a colour camera sharing one viewpoint."""

    baseline_m: float = Field(0.05, gt=0, description="stereo baseline")
    native_focal_px: float = Field(380.0, gt=0, description="focal length at the sensor's native 640 px width")
    disparity_noise_px: float = Field(0.08, ge=0, description="subpixel disparity noise (1 sigma, native px)")
    subpixel_steps: int = Field(32, ge=1, description="disparity quantisation: steps per native pixel")
    min_range_m: float = Field(0.3, gt=0)
    max_range_m: float = Field(5.0, gt=0)
    edge_hole_prob: float = Field(0.5, ge=0, le=1, description="drop chance of a pixel at a depth discontinuity")
    edge_jump: float = Field(0.08, gt=0, description="relative depth jump that counts as a discontinuity")
    grazing_cos: Range = Field((0.12, 0.3), description="cos(incidence) below lo: always a hole; lo..hi: maybe")
    speckle_prob: float = Field(0.002, ge=0, le=1, description="random isolated dropouts per pixel")
    rgb_noise: Range = Field((1.0, 4.0), description="colour sensor noise, sigma in 8-bit levels")

    @model_validator(mode="after")
    def _check(self) -> "SensorConfig":
        if self.min_range_m >= self.max_range_m:
            raise ValueError("sensor min_range_m must be below max_range_m")
        return self


class SceneConfig(BaseModel):
    fov_deg: float = Field(60.0, gt=10, lt=150, description="field of view of the square image")
    distance_m: Range = (0.6, 2.8)  # object centre along the optical axis
    apparent_size: Range = (0.3, 0.55)  # object bounding radius as a fraction of the image half-width
    centre_jitter: float = 0.15  # object centre offset from the image centre, fraction of the half-width
    pitch_deg: Range = (15.0, 40.0)
    roll_deg: Range = (-4.0, 4.0)
    tilt_deg: Range = (0.0, 30.0)  # object tilt away from its upright pose (yaw is uniform)
    wall_gap_m: Range = (0.3, 4.0)  # wall behind the object; beyond the sensor's range it reads as no depth
    wall_yaw_deg: Range = (-30.0, 30.0)
    colour_bias: float = Field(0.75, ge=0, le=1,
                               description="chance the object takes its class's typical hue (else any hue)")
    hue_spread: float = Field(0.05, ge=0, le=0.5, description="hue jitter around the class hue (fraction of 360°)")
    texture_bias: float = Field(0.5, ge=0, le=1, description="chance the object has its class's typical texture")
    sensor: SensorConfig = Field(default_factory=SensorConfig)


@dataclass
class Scene:
    """Everything needed to render one image; arrays are float32."""

    shape: str
    params: np.ndarray  # shape instance parameters
    rotation: np.ndarray  # 3x3 object → world
    scale: float  # metres per local unit
    centre: np.ndarray  # (3,) object origin in the world
    camera: np.ndarray  # 3x3 columns: right, up, forward
    floor_y: float
    wall_normal: np.ndarray  # (3,) pointing at the camera
    wall_offset: float  # wall: dot(wall_normal, p) = wall_offset
    light: np.ndarray  # (3,) point light position
    light_colour: np.ndarray  # (3,)
    ambient: float
    colour: np.ndarray  # (3,) object base colour, linear RGB
    colour2: np.ndarray  # (3,) object pattern colour
    texture: int  # index into TEXTURES
    tex_freq: float
    tex_dir: np.ndarray  # (3,) stripe direction, unit
    specular: float
    shininess: float
    floor_colour: np.ndarray
    floor_colour2: np.ndarray
    floor_texture: int  # index into FLOOR_TEXTURES
    floor_scale: float  # tile/plank size in metres
    wall_colour: np.ndarray
    wall_texture: int  # index into WALL_TEXTURES
    exposure: float
    rgb_noise: float
    noise_seed: int  # seeds the sensor noise of this image


def image_seed(seed: int, split: str, cls: str, index: int) -> np.random.SeedSequence:
    """The seed of one image: a pure function of (seed, split, class, index)."""
    return np.random.SeedSequence([int(seed), zlib.crc32(split.encode()), zlib.crc32(cls.encode()), int(index)])


def _rotation(yaw: float, tilt: float, tilt_axis: float) -> np.ndarray:
    cy, sy = np.cos(yaw), np.sin(yaw)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    ax = np.array([np.cos(tilt_axis), 0.0, np.sin(tilt_axis)])  # horizontal axis to tilt about
    k = np.array([[0, -ax[2], ax[1]], [ax[2], 0, -ax[0]], [-ax[1], ax[0], 0]])
    r_tilt = np.eye(3) + np.sin(tilt) * k + (1 - np.cos(tilt)) * (k @ k)  # Rodrigues
    return r_tilt @ r_yaw


_GRID = np.stack(np.meshgrid(*[np.linspace(-1, 1, 33, dtype=np.float32)] * 3, indexing="ij"), -1).reshape(-1, 3)


def _lowest(shape, params: np.ndarray, rotation: np.ndarray) -> float:
    """World-vertical offset of the object's lowest point below its origin (local units, negative)."""
    inside = _GRID[shape.sdf(_GRID[:, 0], _GRID[:, 1], _GRID[:, 2], tuple(params)) <= 0.03]
    return float((inside @ rotation[1].astype(np.float32)).min())


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    rgb = np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))
    return rgb ** 2.2  # sRGB-ish → linear


def sample_scene(shape_name: str, rng: np.random.Generator, cfg: SceneConfig) -> Scene:
    shape = SHAPES.get(shape_name)
    u = rng.uniform
    tan_half = np.tan(np.radians(cfg.fov_deg) / 2)

    pitch, roll = np.radians(u(*cfg.pitch_deg)), np.radians(u(*cfg.roll_deg))
    fwd = np.array([0.0, -np.sin(pitch), np.cos(pitch)])
    up = np.array([0.0, np.cos(pitch), np.sin(pitch)])
    right = np.array([1.0, 0.0, 0.0])
    right, up = np.cos(roll) * right + np.sin(roll) * up, -np.sin(roll) * right + np.cos(roll) * up
    camera = np.stack([right, up, fwd], axis=1)

    params = np.asarray(shape.sample(rng), np.float32)
    rotation = _rotation(u(0, 2 * np.pi), np.radians(u(*cfg.tilt_deg)), u(0, 2 * np.pi))
    z = u(*cfg.distance_m)
    scale = u(*cfg.apparent_size) * z * tan_half
    off = rng.uniform(-cfg.centre_jitter, cfg.centre_jitter, 2) * tan_half
    centre = z * (off[0] * right + off[1] * up + fwd)
    # rest the object on the floor: its lowest interior grid point (after rotation) touches it
    floor_y = float(centre[1] + scale * _lowest(shape, params, rotation))

    wall_yaw = np.radians(u(*cfg.wall_yaw_deg))
    wall_normal = np.array([np.sin(wall_yaw), 0.0, -np.cos(wall_yaw)])
    wall_point = np.array([centre[0], 0.0, centre[2]]) - (scale + u(*cfg.wall_gap_m)) * wall_normal
    wall_offset = float(wall_normal @ wall_point)

    light = np.array([u(-2.0, 2.0), floor_y + 2 * scale + u(1.0, 2.0), u(-0.5, 1.0) * centre[2]])
    light_colour = np.array([1.0, 1.0, 1.0]) + u(-0.12, 0.12) * np.array([1.0, 0.0, -1.0])  # warm ↔ cool

    if rng.random() < cfg.colour_bias:
        hue = shape.hue + rng.uniform(-cfg.hue_spread, cfg.hue_spread)
    else:
        hue = rng.random()
    sat, val = u(0.45, 0.95), u(0.45, 0.95)
    colour = _hsv(hue, sat, val)
    colour2 = _hsv(hue + u(-0.08, 0.08), sat * u(0.2, 0.9), val * u(0.35, 1.0))
    texture = TEXTURES.index(shape.texture) if rng.random() < cfg.texture_bias else int(rng.integers(len(TEXTURES)))
    tex_dir = rng.normal(size=3)
    tex_dir /= np.linalg.norm(tex_dir)

    floor_hue, wall_hue = rng.random(), rng.random()
    floor_colour = _hsv(floor_hue, u(0.05, 0.4), u(0.3, 0.85))
    floor_colour2 = floor_colour * u(0.6, 0.95)
    wall_colour = _hsv(wall_hue, u(0.02, 0.3), u(0.55, 0.95))

    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return Scene(
        shape=shape_name, params=params, rotation=f32(rotation), scale=float(scale), centre=f32(centre),
        camera=f32(camera), floor_y=floor_y, wall_normal=f32(wall_normal), wall_offset=wall_offset,
        light=f32(light), light_colour=f32(light_colour), ambient=float(u(0.2, 0.4)),
        colour=f32(colour), colour2=f32(colour2), texture=texture, tex_freq=float(u(2.5, 6.0)), tex_dir=f32(tex_dir),
        specular=float(u(0.05, 0.5)), shininess=float(u(8, 64)),
        floor_colour=f32(floor_colour), floor_colour2=f32(floor_colour2),
        floor_texture=int(rng.integers(len(FLOOR_TEXTURES))), floor_scale=float(u(0.2, 0.6)),
        wall_colour=f32(wall_colour), wall_texture=int(rng.integers(len(WALL_TEXTURES))),
        exposure=float(u(0.85, 1.25)), rgb_noise=float(u(*cfg.sensor.rgb_noise)),
        noise_seed=int(rng.integers(2**63)),
    )
