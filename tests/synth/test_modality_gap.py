"""The modality gap is genuine: colour carries class information that depth lacks, and vice versa for geometry."""

from __future__ import annotations

import numpy as np

from socketedge.synth import DEFAULT_TASK_CLASSES, ImageSpec, render_batch

N, SIZE = 30, 32


def _nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    x = (features - features.mean(0)) / (features.std(0) + 1e-9)
    train = np.arange(len(labels)) % 2 == 0
    classes = np.unique(labels)
    centroids = np.stack([x[train & (labels == k)].mean(0) for k in classes])
    pred = classes[np.argmin(((x[~train, None] - centroids[None]) ** 2).sum(-1), 1)]
    return float((pred == labels[~train]).mean())


def test_mean_colour_separates_classes_in_rgb_but_mean_depth_does_not():
    crop = slice(SIZE * 3 // 10, SIZE * 7 // 10)  # the object sits near the image centre
    colour, depth, labels = [], [], []
    for k, cls in enumerate(DEFAULT_TASK_CLASSES):
        rgb, d = render_batch([ImageSpec("gap", cls, i) for i in range(N)], SIZE)
        colour.append(rgb[:, crop, crop].reshape(N, -1, 3).mean(1))
        centre = d[:, crop, crop].reshape(N, -1).astype(float)
        depth.append([(r[r > 0].mean(), r[r > 0].std()) for r in centre])
        labels += [k] * N
    labels = np.array(labels)
    chance = 1 / len(DEFAULT_TASK_CLASSES)
    acc_rgb = _nearest_centroid_accuracy(np.concatenate(colour), labels)
    acc_depth = _nearest_centroid_accuracy(np.concatenate(depth), labels)
    assert acc_rgb > 2.5 * chance, acc_rgb
    assert acc_depth < 1.8 * chance, acc_depth


def test_depth_sees_geometry_only_and_rgb_sees_colour_texture_and_light():
    """Repainting and relighting a scene changes its RGB image but not one depth value; changing the shape in
    the same pose changes the depth image."""
    from dataclasses import replace

    from socketedge.synth.render import render_scenes
    from socketedge.synth.scene import SceneConfig, image_seed, sample_scene
    from socketedge.synth.sensor import capture

    cfg = SceneConfig()
    scene = sample_scene("cube", np.random.default_rng(image_seed(0, "geo", "cube", 0)), cfg)
    repainted = replace(scene, colour=scene.colour[::-1].copy(), colour2=scene.colour2 * 0.3, texture=2,
                        light=scene.light + np.float32(0.7), ambient=0.1, floor_colour=scene.wall_colour)
    sphere = replace(scene, shape="sphere", params=np.zeros(0, np.float32))

    def shoot(s):
        return capture(render_scenes([s], 48, cfg.fov_deg), [s], cfg.fov_deg, cfg.sensor)

    (rgb_a, depth_a), (rgb_b, depth_b), (_, depth_c) = shoot(scene), shoot(repainted), shoot(sphere)
    np.testing.assert_array_equal(depth_a, depth_b)
    assert np.abs(rgb_a.astype(int) - rgb_b.astype(int)).mean() > 10
    assert (np.abs(depth_a.astype(int) - depth_c.astype(int)) > 20).mean() > 0.02
