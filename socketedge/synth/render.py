"""Vectorised ray casting of a batch of scenes that share one shape.

Floor and wall are intersected analytically; the object is sphere-traced inside its bounding sphere (rays that
miss it never march, and rays that finish leave the working set). Shading: ambient + Lambert + Blinn-Phong from
one point light, with a soft shadow traced through the object. The result is scene radiance and ground-truth
geometry; sensor.py turns them into the 8-bit colour image and noisy 16-bit depth image a camera delivers.

Arrays are (B, P) grids (image, pixel) of float32; vectors are tuples of three such arrays, and per-image values
are (B, 1) columns that broadcast over the pixels, so nothing is gathered per ray outside the object tracer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from socketedge.synth.scene import FLOOR_TEXTURES, WALL_TEXTURES, Scene
from socketedge.synth.shapes import SHAPES, TEXTURES

MAX_STEPS = 96
HIT_EPS = 1e-3  # in local units (the object's bounding radius is 1)
STEP = 0.95  # under-relaxed steps keep the approximate SDFs (ellipsoid) safe
SOFT_K = 10.0  # soft-shadow sharpness
_TET = np.array([[1, -1, -1], [-1, -1, 1], [-1, 1, -1], [1, 1, 1]], np.float32)

V = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Rendered:
    radiance: np.ndarray  # (B, S, S, 3) linear RGB, float32, roughly in [0, 1]
    depth: np.ndarray  # (B, S, S) metres along the optical axis, 0 where nothing is hit
    cos_incidence: np.ndarray  # (B, S, S) |cos| of the angle between view ray and surface normal
    object_mask: np.ndarray  # (B, S, S) bool


def _dot(a: V, b: V) -> np.ndarray:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _scale(a: V, s) -> V:
    return a[0] * s, a[1] * s, a[2] * s


def _add(a: V, b: V) -> V:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _sub(a: V, b: V) -> V:
    return a[0] - b[0], a[1] - b[1], a[2] - b[2]


def _unit(a: V) -> tuple[V, np.ndarray]:
    n = np.sqrt(_dot(a, a))
    return _scale(a, 1.0 / np.maximum(n, 1e-9)), n


def _where(m: np.ndarray, a: V, b: V) -> V:
    return np.where(m, a[0], b[0]), np.where(m, a[1], b[1]), np.where(m, a[2], b[2])


class _Batch:
    """Per-image scene values as (B, 1) columns (vectors as three columns), for broadcasting over pixels."""

    def __init__(self, scenes: list[Scene]):
        self.shape = SHAPES.get(scenes[0].shape)
        if any(s.shape != scenes[0].shape for s in scenes):
            raise ValueError("a render batch must hold one shape")
        self.n = len(scenes)
        self.params = np.stack([s.params for s in scenes]).astype(np.float32).reshape(self.n, -1)
        self.rotation = np.stack([s.rotation for s in scenes]).astype(np.float32)

        def col(name):
            return np.array([getattr(s, name) for s in scenes], np.float32).reshape(-1, 1)

        def vec(name):
            a = np.stack([np.asarray(getattr(s, name), np.float32) for s in scenes])
            return a[:, 0:1], a[:, 1:2], a[:, 2:3]

        for name in ("scale", "floor_y", "wall_offset", "ambient", "texture", "tex_freq", "specular", "shininess",
                     "floor_texture", "floor_scale", "wall_texture", "exposure"):
            setattr(self, name, col(name))
        for name in ("centre", "wall_normal", "light", "light_colour", "colour", "colour2", "tex_dir",
                     "floor_colour", "floor_colour2", "wall_colour"):
            setattr(self, name, vec(name))
        cam = np.stack([s.camera for s in scenes]).astype(np.float32)
        self.cam = [(cam[:, 0, k:k + 1], cam[:, 1, k:k + 1], cam[:, 2, k:k + 1]) for k in range(3)]  # right, up, fwd

    def to_local(self, v: V, point: bool) -> V:
        """World points → each image's object frame, Rᵀ(v - c) / s; directions (point=False) → Rᵀ v."""
        if point:
            v = _scale(_sub(v, self.centre), 1.0 / self.scale)
        r = self.rotation
        return tuple(r[:, 0, i:i + 1] * v[0] + r[:, 1, i:i + 1] * v[1] + r[:, 2, i:i + 1] * v[2] for i in range(3))


def trace_object(batch: _Batch, o: V, d: V, tmax: np.ndarray, active: np.ndarray,
                 soft: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray | V]:
    """Sphere-trace (B, P) rays (world origins ``o``, unit directions ``d``) against each image's object.

    Returns (hit, t in metres, local hit point); with ``soft`` the third value is instead the soft-shadow
    visibility in [0, 1] (1 = lit) and ``hit`` marks hard occlusion.
    """
    shape = active.shape
    lo = batch.to_local(o, point=True)
    ld = batch.to_local(d, point=False)
    tmax_l = tmax / batch.scale
    b = _dot(lo, ld)
    disc = b * b - (_dot(lo, lo) - 1.0)
    sq = np.sqrt(np.maximum(disc, 0))
    t0, t1 = -b - sq, np.minimum(-b + sq, tmax_l)
    cand = np.flatnonzero(active & (disc > 0) & (t1 > 0) & (t0 < tmax_l))

    hit = np.zeros(active.size, bool)
    t_hit = np.full(active.size, np.inf, np.float32)
    vis_out = np.ones(active.size, np.float32)
    ids = cand
    ox, oy, oz, dx, dy, dz = (np.broadcast_to(a, shape).ravel()[cand] for a in (*lo, *ld))
    prm = tuple(np.ascontiguousarray(c) for c in batch.params[cand // shape[1]].T)
    t = np.maximum(t0.ravel()[cand], 1e-3 if soft else 0.0).astype(np.float32)
    t_end = t1.ravel()[cand].astype(np.float32)
    vis = np.ones(len(cand), np.float32)
    sdf = batch.shape.sdf
    for _ in range(MAX_STEPS):
        if not len(ids):
            break
        dist = sdf(ox + t * dx, oy + t * dy, oz + t * dz, prm)
        if soft:
            vis = np.minimum(vis, SOFT_K * dist / np.maximum(t, 1e-3))
        done = dist < HIT_EPS
        hit[ids[done]] = True
        t_hit[ids[done]] = t[done]
        t = t + STEP * np.maximum(dist, HIT_EPS * 0.5)
        keep = ~done & (t < t_end)
        if soft:
            vis_out[ids[~keep]] = np.clip(vis[~keep], 0, 1)
        if not keep.all():
            ids, t, t_end, vis = ids[keep], t[keep], t_end[keep], vis[keep]
            ox, oy, oz, dx, dy, dz = (a[keep] for a in (ox, oy, oz, dx, dy, dz))
            prm = tuple(a[keep] for a in prm)
    if soft:
        vis_out[ids] = np.clip(vis, 0, 1)  # still marching after MAX_STEPS: grazing the surface
        vis_out[hit] = 0.0
    hit, t_hit = hit.reshape(shape), t_hit.reshape(shape)
    if soft:
        return hit, t_hit * batch.scale, vis_out.reshape(shape)
    tl = np.where(hit, t_hit, 0.0)
    return hit, t_hit * batch.scale, _add(lo, _scale(ld, tl))


def object_normals(batch: _Batch, img: np.ndarray, p: np.ndarray) -> np.ndarray:
    """World-space unit normals (N, 3) at local surface points ``p`` (N, 3) of images ``img``."""
    prm = tuple(np.ascontiguousarray(c) for c in batch.params[img].T)
    g = np.zeros_like(p)
    for k in _TET:
        q = p + 1e-3 * k
        g += k * batch.shape.sdf(q[:, 0], q[:, 1], q[:, 2], prm)[:, None]
    g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-9)
    return np.einsum("nij,nj->ni", batch.rotation[img], g)


def object_pattern(batch: _Batch, img: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Mix factor in [0, 1] between an object's base and pattern colour, from its own surface coordinates."""
    kind = batch.texture[img, 0].astype(int)
    f = batch.tex_freq[img]
    q = p * f
    tex_dir = np.concatenate(batch.tex_dir, 1)[img]
    along = (p * tex_dir).sum(1) * f[:, 0]
    m = np.zeros(len(img), np.float32)
    sel = kind == TEXTURES.index("stripes")
    m[sel] = np.sin(np.pi * along[sel]) > 0
    sel = kind == TEXTURES.index("checker")
    m[sel] = np.floor(q[sel]).sum(1) % 2
    sel = kind == TEXTURES.index("dots")
    m[sel] = np.linalg.norm(q[sel] - np.floor(q[sel]) - 0.5, axis=1) < 0.3
    sel = kind == TEXTURES.index("marble")
    warp = 2.0 * np.sin(2.1 * q[sel, 0]) * np.sin(1.7 * q[sel, 2] + q[sel, 1])
    m[sel] = 0.5 + 0.5 * np.sin(np.pi * along[sel] + warp)
    return m


def _hash(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A cheap deterministic pseudo-random value in [0, 1) per integer cell."""
    return np.modf(np.abs(np.sin(a * 12.9898 + b * 78.233) * 43758.5453))[0].astype(np.float32)


def _floor_mix(batch: _Batch, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    u, v = x / batch.floor_scale, z / batch.floor_scale
    cu, cv = np.floor(u), np.floor(v)
    grout = np.minimum(u - cu, v - cv) < 0.04
    tiles = np.where(grout, 1.0, ((cu + cv) % 2) * 0.6)
    plank = np.floor(v * 3)
    seams = np.modf(np.abs(u) * 0.7 + _hash(plank, 1.0))[0] < 0.03  # plank ends, staggered per row
    planks = 0.8 * _hash(plank, batch.floor_scale * 100) + 0.2 * seams
    kind = batch.floor_texture
    return np.where(kind == FLOOR_TEXTURES.index("tiles"), tiles,
                    np.where(kind == FLOOR_TEXTURES.index("planks"), planks, 0.0)).astype(np.float32)


def render_scenes(scenes: list[Scene], size: int, fov_deg: float) -> Rendered:
    """Render one shape's scenes at ``size``×``size`` pixels."""
    batch = _Batch(scenes)
    nb = len(scenes)
    focal = size / 2 / np.tan(np.radians(fov_deg) / 2)
    jj, ii = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    xn = ((jj + 0.5 - size / 2) / focal).reshape(1, -1)
    yn = (-(ii + 0.5 - size / 2) / focal).reshape(1, -1)
    right, up, fwd = batch.cam
    d, _ = _unit(_add(_add(_scale(right, xn), _scale(up, yn)), fwd))  # (B, P) unit view rays
    along_axis = 1.0 / np.sqrt(1 + xn * xn + yn * yn)  # cos of the angle to the optical axis

    # background planes: floor y = floor_y, wall n·p = offset (n faces the camera)
    inf = np.float32(np.inf)
    t_floor = np.where(d[1] < -1e-6, batch.floor_y / np.minimum(d[1], -1e-6), inf)
    den = _dot(batch.wall_normal, d)
    t_wall = np.where(den < -1e-6, batch.wall_offset / np.minimum(den, -1e-6), inf)
    t_floor = np.where(t_floor > 0, t_floor, inf)
    t_wall = np.where(t_wall > 0, t_wall, inf)
    on_floor = t_floor <= t_wall
    t_bg = np.minimum(t_floor, t_wall)

    zero = np.zeros((1, 1), np.float32)
    hit, t_obj, p_local = trace_object(batch, (zero, zero, zero), d, np.minimum(t_bg, 50.0), np.ones_like(on_floor))
    is_obj = hit & (t_obj < t_bg)
    t = np.where(is_obj, t_obj, t_bg)
    valid = np.isfinite(t)
    t = np.where(valid, t, 0.0).astype(np.float32)
    p = _scale(d, t)

    # surface normal, albedo and gloss: floor / wall everywhere, then the object's pixels on top
    ones = np.ones_like(t)
    normal = _where(on_floor, (0 * ones, ones, 0 * ones), _scale(batch.wall_normal, ones))
    fm = _floor_mix(batch, p[0], p[2])[..., None]
    floor_albedo = np.concatenate(batch.floor_colour, 1)[:, None] * (1 - fm) + \
        np.concatenate(batch.floor_colour2, 1)[:, None] * fm
    along_wall = p[0] * -batch.wall_normal[2] + p[2] * batch.wall_normal[0]
    wall_stripes = (batch.wall_texture == WALL_TEXTURES.index("stripes")) & (np.modf(np.abs(along_wall) * 4)[0] < 0.5)
    wall_albedo = np.concatenate(batch.wall_colour, 1)[:, None] * np.where(wall_stripes, 0.85, 1.0)[..., None]
    albedo = np.where(on_floor[..., None], floor_albedo, wall_albedo).astype(np.float32)
    spec = np.where(on_floor, 0.04, 0.02).astype(np.float32)
    shin = np.full_like(t, 16.0)

    obj = np.flatnonzero(is_obj)
    if len(obj):
        io = obj // t.shape[1]
        pl = np.stack([c.ravel()[obj] for c in p_local], 1)
        n_obj = object_normals(batch, io, pl)
        for k in range(3):
            normal[k].ravel()[obj] = n_obj[:, k]
        mix = object_pattern(batch, io, pl)[:, None]
        c1, c2 = np.concatenate(batch.colour, 1)[io], np.concatenate(batch.colour2, 1)[io]
        albedo.reshape(-1, 3)[obj] = c1 + (c2 - c1) * mix
        spec.ravel()[obj] = batch.specular[io, 0]
        shin.ravel()[obj] = batch.shininess[io, 0]
    facing = _dot(normal, d)
    normal = _scale(normal, np.where(facing > 0, -1.0, 1.0).astype(np.float32))  # face the camera
    cos_inc = np.abs(facing)

    ldir, dist = _unit(_sub(batch.light, p))
    origin = _add(p, _scale(normal, 2e-3 * batch.scale))
    _, _, vis = trace_object(batch, origin, ldir, dist, valid, soft=True)
    nl = np.maximum(_dot(normal, ldir), 0)
    half, _ = _unit(_sub(ldir, d))
    nh = np.maximum(_dot(normal, half), 0)
    direct = vis * 4.0 / (1.0 + 0.35 * dist * dist)
    diffuse = batch.ambient + (1 - batch.ambient) * direct * nl
    gloss = direct * spec * np.where(nl > 0, nh ** shin, 0)
    light = np.stack(batch.light_colour, -1)[:, 0][:, None]  # (B, 1, 3)
    radiance = (albedo * diffuse[..., None] + gloss[..., None]) * np.where(
        valid[..., None], light * batch.exposure[..., None], 0)

    depth = t * along_axis
    s = (nb, size, size)
    return Rendered(radiance.astype(np.float32).reshape(*s, 3), depth.astype(np.float32).reshape(s),
                    cos_inc.astype(np.float32).reshape(s), is_obj.reshape(s))
