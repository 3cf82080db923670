"""The shape catalogue: signed distance functions of the objects the scene generator renders.

Every shape lives in its own local frame (y up) and fits inside the unit sphere, so the renderer can start each
ray at that bounding sphere. A shape has a few instance parameters (aspect ratios, thicknesses) sampled per image,
which give each class its intra-class variation. SDFs are vectorised over rays: points come as three 1-D float32
arrays (x, y, z) and parameters as a tuple of 1-D arrays of the same length. Several SDFs are the maximum of exact
plane distances (convex polytopes): that is a lower bound of the true distance outside, so sphere tracing stays
safe, only a little slower near edges.

Each catalogue entry also carries a characteristic hue and a preferred surface texture, the way real object
categories tend to have typical colours and materials; how strongly an image follows them is a scene setting
(``SceneConfig.colour_bias`` / ``texture_bias``), not a property of the geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from socketedge.registry import Registry

Arr = np.ndarray
SDF = Callable[[Arr, Arr, Arr, tuple[Arr, ...]], Arr]

TEXTURES = ("solid", "stripes", "checker", "dots", "marble")
BOUND = 0.92  # every shape's furthest point from its origin (the renderer's bounding sphere is slightly larger)


@dataclass(frozen=True)
class Shape:
    name: str
    sdf: SDF
    sample: Callable[[np.random.Generator], tuple[float, ...]]  # instance parameters
    hue: float  # characteristic hue in [0, 1)
    texture: str  # preferred texture (one of TEXTURES)


SHAPES: Registry[Shape] = Registry("shape")


def _len2(a: Arr, b: Arr) -> Arr:
    return np.sqrt(a * a + b * b)


def _len3(a: Arr, b: Arr, c: Arr) -> Arr:
    return np.sqrt(a * a + b * b + c * c)


def _box2(qx: Arr, qy: Arr, bx, by) -> Arr:
    """Exact 2-D box distance on already-folded coordinates."""
    dx, dy = qx - bx, qy - by
    return _len2(np.maximum(dx, 0), np.maximum(dy, 0)) + np.minimum(np.maximum(dx, dy), 0)


def _box3(x: Arr, y: Arr, z: Arr, bx, by, bz) -> Arr:
    dx, dy, dz = np.abs(x) - bx, np.abs(y) - by, np.abs(z) - bz
    outside = _len3(np.maximum(dx, 0), np.maximum(dy, 0), np.maximum(dz, 0))
    return outside + np.minimum(np.maximum(np.maximum(dx, dy), dz), 0)


# Hues are spaced by the golden ratio over the catalogue order, so any subset of shapes gets well-spread colours.
_CATALOGUE: list[tuple[str, str]] = []


def shape(name: str, texture: str):
    def add(fns):
        sdf, sample = fns()
        hue = (len(_CATALOGUE) * 0.6180339887) % 1.0
        _CATALOGUE.append((name, texture))
        SHAPES.register(name, Shape(name, sdf, sample, hue, texture))
        return fns

    return add


@shape("sphere", "solid")
def _sphere():
    r = BOUND * 0.97

    def sdf(x, y, z, p):
        return _len3(x, y, z) - r

    return sdf, lambda rng: ()


@shape("cube", "checker")
def _cube():
    rr = 0.04  # rounded edges, as on real boxes

    def sample(rng):
        b = np.array([1.0, rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)])
        b *= BOUND / np.linalg.norm(b)
        return tuple(b)

    def sdf(x, y, z, p):
        return _box3(x, y, z, p[0] - rr, p[1] - rr, p[2] - rr) - rr

    return sdf, sample


@shape("cylinder", "stripes")
def _cylinder():
    def sample(rng):
        k = rng.uniform(0.7, 1.5)  # half-height / radius
        r = BOUND / np.hypot(1.0, k)
        return (r, k * r)

    def sdf(x, y, z, p):
        return _box2(_len2(x, z), np.abs(y), p[0], p[1])

    return sdf, sample


@shape("cone", "stripes")
def _cone():
    def sample(rng):
        k = rng.uniform(0.6, 1.1)  # half-height / base radius
        r = BOUND / np.hypot(1.0, k)
        return (r, k * r)

    def sdf(x, y, z, p):
        r1, h = p
        qx, qy = _len2(x, z), y
        # segment to the flat base (radius r1 at y=-h) and to the slanted side (base rim → apex at y=+h)
        cax = qx - np.minimum(qx, np.where(qy < 0, r1, 0.0))
        cay = np.abs(qy) - h
        k2x, k2y = -r1, 2 * h
        tt = np.clip(((0 - qx) * k2x + (h - qy) * k2y) / (k2x * k2x + k2y * k2y), 0, 1)
        cbx, cby = qx + k2x * tt, qy - h + k2y * tt
        s = np.where((cbx < 0) & (cay < 0), -1.0, 1.0)
        return (s * np.sqrt(np.minimum(cax * cax + cay * cay, cbx * cbx + cby * cby))).astype(np.float32)

    return sdf, sample


@shape("torus", "marble")
def _torus():
    def sample(rng):
        k = rng.uniform(0.28, 0.45)  # tube radius / ring radius
        big = BOUND / (1 + k)
        return (big, k * big)

    def sdf(x, y, z, p):
        return _len2(_len2(x, z) - p[0], y) - p[1]

    return sdf, sample


@shape("pyramid", "solid")
def _pyramid():
    def sample(rng):
        k = rng.uniform(0.55, 0.9)  # half-height / base half-width
        a = BOUND / np.sqrt(2 + k * k)
        return (a, k * a)

    def sdf(x, y, z, p):
        a, h = p
        n = np.sqrt(4 * h * h + a * a)
        side = (2 * h * np.maximum(np.abs(x), np.abs(z)) + a * (y - h)) / n
        return np.maximum(side, -y - h)

    return sdf, sample


@shape("capsule", "solid")
def _capsule():
    def sample(rng):
        k = rng.uniform(0.3, 0.45)  # radius / (half-length + radius)
        return (BOUND * (1 - k), BOUND * k)

    def sdf(x, y, z, p):
        a, r = p
        return _len3(x, y - np.clip(y, -a, a), z) - r

    return sdf, sample


@shape("ellipsoid", "marble")
def _ellipsoid():
    def sample(rng):
        return (BOUND, BOUND * rng.uniform(0.45, 0.65), BOUND * rng.uniform(0.6, 0.85))

    def sdf(x, y, z, p):
        # the usual first-order approximation k0 (k0 - 1) / k1; the tracer's step factor keeps it safe
        k0 = _len3(x / p[0], y / p[1], z / p[2])
        k1 = _len3(x / (p[0] * p[0]), y / (p[1] * p[1]), z / (p[2] * p[2]))
        return k0 * (k0 - 1) / np.maximum(k1, 1e-6)

    return sdf, sample


@shape("prism", "stripes")
def _prism():
    def sample(rng):
        k = rng.uniform(0.5, 1.1)  # half-depth / circumradius
        c = BOUND / np.hypot(1.0, k)
        return (c, k * c)

    def sdf(x, y, z, p):
        c, d = p  # triangle in x-y with circumradius c (apex up), extruded along z by ±d
        tri = np.maximum(np.abs(x) * 0.8660254 + y * 0.5, -y) - c * 0.5
        return np.maximum(tri, np.abs(z) - d)

    return sdf, sample


@shape("ring", "checker")
def _ring():
    def sample(rng):
        w = rng.uniform(0.12, 0.22)  # radial half-thickness / outer radius
        h = rng.uniform(0.15, 0.4)  # half-height / outer radius
        ro = BOUND / np.hypot(1.0, h)
        return (ro * (1 - w), ro * w, ro * h)

    def sdf(x, y, z, p):
        mid, w, h = p
        return _box2(np.abs(_len2(x, z) - mid), np.abs(y), w, h)

    return sdf, sample


@shape("octahedron", "checker")
def _octahedron():
    def sample(rng):
        k = rng.uniform(0.8, 1.3)  # vertical stretch
        return (BOUND / max(1.0, k), k)

    def sdf(x, y, z, p):
        s, k = p
        return (np.abs(x) + np.abs(y) / k + np.abs(z) - s) / np.sqrt(2 + 1 / (k * k))

    return sdf, sample


@shape("hexprism", "dots")
def _hexprism():
    def sample(rng):
        k = rng.uniform(0.4, 1.4)  # half-height / apothem
        a = BOUND / np.hypot(1 / 0.8660254, k)
        return (a, k * a)

    def sdf(x, y, z, p):
        a, h = p
        ax, az = np.abs(x), np.abs(z)
        hexd = np.maximum(az, az * 0.5 + ax * 0.8660254) - a
        return np.maximum(hexd, np.abs(y) - h)

    return sdf, sample


@shape("cross", "dots")
def _cross():
    def sample(rng):
        t = rng.uniform(0.18, 0.3)  # arm half-thickness / arm half-length
        arm = BOUND / np.sqrt(1 + 2 * t * t)
        return (arm, t * arm)

    def sdf(x, y, z, p):
        arm, t = p
        return np.minimum(np.minimum(_box3(x, y, z, arm, t, t), _box3(x, y, z, t, arm, t)),
                          _box3(x, y, z, t, t, arm))

    return sdf, sample


@shape("tetrahedron", "marble")
def _tetrahedron():
    inr = BOUND / 3  # a regular tetrahedron's inradius is a third of its circumradius
    c = 1 / np.sqrt(3)

    def sdf(x, y, z, p):
        return np.maximum(np.maximum(x + y + z, -x - y + z), np.maximum(x - y - z, -x + y - z)) * c - inr

    return sdf, lambda rng: ()


CATALOGUE: tuple[str, ...] = tuple(name for name, _ in _CATALOGUE)
DEFAULT_TASK_CLASSES: tuple[str, ...] = ("sphere", "cube", "cylinder", "cone", "torus", "pyramid")
DEFAULT_TI_CLASSES: tuple[str, ...] = ("capsule", "ellipsoid", "prism", "ring", "octahedron", "hexprism")
