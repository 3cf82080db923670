"""The scene generator: catalogue, determinism per image, class validation, every shape visible."""

from __future__ import annotations

import numpy as np
import pytest

from socketedge.errors import ConfigError
from socketedge.synth import CATALOGUE, DEFAULT_TASK_CLASSES, DEFAULT_TI_CLASSES, ImageSpec, make_config, render_batch
from socketedge.synth.render import render_scenes
from socketedge.synth.scene import SceneConfig, image_seed, sample_scene


def test_catalogue_has_at_least_12_shapes_and_disjoint_defaults():
    assert len(CATALOGUE) >= 12
    assert {"sphere", "cube", "cylinder", "cone", "torus", "pyramid", "capsule", "ellipsoid", "prism",
            "ring"} <= set(CATALOGUE)
    assert not set(DEFAULT_TASK_CLASSES) & set(DEFAULT_TI_CLASSES)
    assert len(DEFAULT_TASK_CLASSES) == len(DEFAULT_TI_CLASSES) == 6


def test_same_seed_same_images_and_independent_of_batch():
    specs = [ImageSpec("source", "torus", i, seed=7) for i in range(5)]
    rgb_a, depth_a = render_batch(specs, 40)
    rgb_b, depth_b = render_batch(specs, 40)
    np.testing.assert_array_equal(rgb_a, rgb_b)
    np.testing.assert_array_equal(depth_a, depth_b)
    # image 3 alone equals image 3 made inside a batch: no image depends on how many others were made
    rgb_1, depth_1 = render_batch([specs[3]], 40)
    np.testing.assert_array_equal(rgb_1[0], rgb_a[3])
    np.testing.assert_array_equal(depth_1[0], depth_a[3])


def test_seed_split_class_and_index_all_change_the_image():
    base = render_batch([ImageSpec("source", "cube", 0, seed=0)], 32)[0][0]
    for other in (ImageSpec("source", "cube", 0, seed=1), ImageSpec("eval", "cube", 0, seed=0),
                  ImageSpec("source", "cube", 1, seed=0)):
        assert not np.array_equal(render_batch([other], 32)[0][0], base), other


def test_image_seed_is_a_pure_function():
    a = np.random.default_rng(image_seed(3, "ti", "ring", 12)).random(4)
    b = np.random.default_rng(image_seed(3, "ti", "ring", 12)).random(4)
    c = np.random.default_rng(image_seed(3, "ti", "ring", 13)).random(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("shape", CATALOGUE)
def test_every_shape_renders_a_visible_object_in_front_of_the_background(shape):
    cfg = SceneConfig()
    scenes = [sample_scene(shape, np.random.default_rng(image_seed(0, "t", shape, i)), cfg) for i in range(3)]
    out = render_scenes(scenes, 48, cfg.fov_deg)
    frac = out.object_mask.mean(axis=(1, 2))
    assert (frac > 0.02).all() and (frac < 0.8).all(), frac
    # the object stands in front of what is behind it: its median depth is below the background's
    for k in range(3):
        m = out.object_mask[k]
        assert np.median(out.depth[k][m]) < np.median(out.depth[k][~m & (out.depth[k] > 0)])
    assert np.isfinite(out.radiance).all() and out.radiance.min() >= 0


def test_class_lists_are_validated():
    with pytest.raises(ConfigError, match="disjoint"):
        make_config(task_classes=["sphere", "cube"], ti_classes=["cube"])
    with pytest.raises(ConfigError, match="did you mean 'sphere'"):
        make_config(task_classes=["spere", "cube"], ti_classes=["ring"])
    with pytest.raises(ConfigError, match="at least 2 task classes"):
        make_config(task_classes=["cube"], ti_classes=["ring"])
    with pytest.raises(ConfigError, match="repeat"):
        make_config(task_classes=["cube", "cube"], ti_classes=["ring"])
    cfg = make_config(task_classes=["cube", "torus"], ti_classes=["ring"], per_class=4)
    assert cfg.counts() == {"source": 4, "ti": 4, "target": 4, "eval": 2}
