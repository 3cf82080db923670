"""The depth camera model: working range, millimetres, z²-growing noise, occlusion bands and other holes."""

from __future__ import annotations

import numpy as np

from socketedge.synth import ImageSpec, render_batch
from socketedge.synth.render import render_scenes
from socketedge.synth.scene import SceneConfig, SensorConfig, image_seed, sample_scene
from socketedge.synth.sensor import depth_image, discontinuity_mask, occlusion_mask

SENSOR = SensorConfig()


def _flat(z: float, size: int = 64, seed: int = 0, **sensor) -> np.ndarray:
    cfg = SensorConfig(**{"speckle_prob": 0.0, **sensor})
    depth = np.full((size, size), z, np.float32)
    return depth_image(depth, np.ones_like(depth), 50.0, cfg, np.random.default_rng(seed))


def test_noise_grows_about_quadratically_with_distance():
    err = {z: (_flat(z).astype(float) / 1000 - z).std() for z in (1.0, 2.0, 4.0)}
    # σ_z ≈ z² σ_d / (f b): doubling the distance multiplies the error by ~4
    assert 2.5 < err[2.0] / err[1.0] < 6.0
    assert 2.5 < err[4.0] / err[2.0] < 6.0
    expected = 4.0 ** 2 * SENSOR.disparity_noise_px / (SENSOR.native_focal_px * SENSOR.baseline_m)
    assert 0.6 * expected < err[4.0] < 1.6 * expected


def test_depth_is_millimetres_quantised_within_the_working_range():
    img = _flat(0.8)
    assert img.dtype == np.uint16
    assert abs(np.median(img) - 800) <= 2
    # far steps are coarse: disparity quantisation makes only a few distinct values at 4.5 m
    far = _flat(4.5, disparity_noise_px=0.0)
    assert len(np.unique(far)) == 1 and abs(int(far[0, 0]) - 4500) < 60
    assert (_flat(0.2) == 0).all(), "closer than the minimum range reads as no depth"
    assert (_flat(7.0) == 0).all(), "beyond the maximum range reads as no depth"


def test_occlusion_band_sits_left_of_a_foreground_object_with_the_stereo_width():
    z = np.full((8, 64), 4.0)
    z[:, 30:40] = 1.0  # a close box in front of a far wall
    occ = occlusion_mask(z, focal_px=100.0, baseline_m=0.05)
    width = 100.0 * 0.05 * (1 / 1.0 - 1 / 4.0)  # disparity difference: 3.75 px
    cols = np.flatnonzero(occ[0])
    assert set(cols) <= set(range(25, 30)), cols  # only background just left of the object
    assert abs(len(cols) - width) <= 1
    assert not occ[:, 40:].any()


def test_discontinuity_and_grazing_angle_holes():
    z = np.full((16, 16), 2.0)
    z[:, 8:] = 3.0
    edge = discontinuity_mask(z, 0.08)
    assert edge[:, 7:9].all() and not edge[:, :7].any() and not edge[:, 9:].any()
    grazing = depth_image(np.full((32, 32), 2.0), np.full((32, 32), 0.05), 50.0, SENSOR,
                          np.random.default_rng(0))
    assert (grazing == 0).all()
    facing = depth_image(np.full((32, 32), 2.0), np.ones((32, 32)), 50.0, SENSOR, np.random.default_rng(0))
    assert (facing > 0).mean() > 0.99


def test_rendered_depth_has_realistic_range_and_holes_at_object_edges():
    specs = [ImageSpec("eval", cls, i) for cls in ("cube", "torus") for i in range(4)]
    depth = np.concatenate([render_batch([s for s in specs if s.cls == c], 64)[1] for c in ("cube", "torus")])
    valid = depth[depth > 0]
    assert valid.min() >= 300 and valid.max() <= 5000
    hole_frac = (depth == 0).mean()
    assert 0.005 < hole_frac < 0.5

    cfg = SceneConfig()
    scenes = [sample_scene("cube", np.random.default_rng(image_seed(0, "eval", "cube", i)), cfg) for i in range(4)]
    out = render_scenes(scenes, 64, cfg.fov_deg)
    holes_at_edges, holes_elsewhere = [], []
    for k in range(4):
        m = out.object_mask[k]
        border = m ^ np.roll(m, 1, 1) | m ^ np.roll(m, -1, 1) | m ^ np.roll(m, 1, 0) | m ^ np.roll(m, -1, 0)
        d = depth_image(out.depth[k], out.cos_incidence[k], 64 / 2 / np.tan(np.radians(30)), cfg.sensor,
                        np.random.default_rng(k))
        inner = m & ~border
        holes_at_edges.append((d[border] == 0).mean())
        holes_elsewhere.append((d[inner] == 0).mean())
    assert np.mean(holes_at_edges) > 0.2 > np.mean(holes_elsewhere) * 3
