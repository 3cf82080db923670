"""`synthesize` / `socketedge synth`: the on-disk layout is the one the real-data readers accept."""

from __future__ import annotations

import json

import numpy as np
import pytest

from socketedge.data.folders import labeled_folder, paired_folder, target_folder
from socketedge.data.imageio import read_image
from socketedge.errors import ConfigError
from socketedge.synth import synthesize

TASK, TI = ["sphere", "cube", "torus"], ["capsule", "ring"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    result = synthesize(out, TASK, TI, per_class=3, size=32, seed=5, progress=False)
    return out, result


def test_layout_is_readable_by_the_data_readers(dataset):
    out, result = dataset
    source = labeled_folder(out / "source")
    assert source.modality == "rgb" and source.class_names == sorted(TASK) and len(source) == 9
    ti = paired_folder(out / "ti")
    assert ti.modalities == ("rgb", "depth") and len(ti) == 6
    assert [a.key for a in ti.a.items] == [b.key for b in ti.b.items]
    assert ti.a.class_names == sorted(TI)
    target = target_folder(out / "target")
    assert target.modality == "depth" and not target.labeled and len(target) == 9
    for modality in ("depth", "rgb"):
        ev = labeled_folder(out / "eval", modality=modality)
        assert ev.modality == modality and ev.class_names == sorted(TASK) and len(ev) == 3
    assert result.counts == {"source": 9, "ti": 6, "target": 9, "eval": 3}


def test_images_have_the_real_formats(dataset):
    out, _ = dataset
    rgb = read_image(next((out / "source" / "cube").iterdir()), "rgb")
    depth = read_image(next((out / "eval" / "depth" / "cube").iterdir()), "depth")
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
    assert depth.shape == (32, 32) and depth.dtype == np.uint16
    assert depth.max() <= 5000 and depth[depth > 0].min() >= 300


def test_manifest_records_config_classes_and_target_labels(dataset):
    out, _ = dataset
    manifest = json.loads((out / "synth.json").read_text())
    assert manifest["task_classes"] == TASK and manifest["ti_classes"] == TI
    assert manifest["config"]["seed"] == 5 and manifest["config"]["size"] == 32
    assert manifest["depth_scale"] == 0.001
    stems = {p.stem for p in (out / "target" / "depth").iterdir()}
    assert set(manifest["target_labels"]) == stems
    assert sorted(manifest["target_labels"].values()) == sorted(TASK * 3)
    assert not any(cls in stem for stem in stems for cls in TASK), "target names must not reveal the class"
    assert not (out.parent / "ds.partial").exists()


def test_images_do_not_depend_on_how_many_were_made(dataset, tmp_path):
    out, _ = dataset
    more = synthesize(tmp_path / "more", TASK, TI, per_class=4, size=32, seed=5, progress=False).out
    for rel in ("source/torus/torus_00002.png", "ti/depth/ring/ring_00001.png", "eval/rgb/sphere/sphere_00000.png"):
        assert (out / rel).read_bytes() == (more / rel).read_bytes(), rel
    old = json.loads((out / "synth.json").read_text())["target_labels"]
    for stem in old:
        assert (out / "target/depth" / f"{stem}.png").read_bytes() == \
            (more / "target/depth" / f"{stem}.png").read_bytes()


def test_refuses_to_overwrite_without_the_flag(tmp_path):
    out = tmp_path / "ds"
    synthesize(out, ["cube", "cone"], ["ring"], per_class=1, size=16, progress=False)
    with pytest.raises(ConfigError, match="--overwrite"):
        synthesize(out, ["cube", "cone"], ["ring"], per_class=1, size=16, progress=False)
    synthesize(out, ["cube", "sphere"], ["ring"], per_class=1, size=16, progress=False, overwrite=True)
    assert sorted(p.name for p in (out / "source").iterdir()) == ["cube", "sphere"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        synthesize(foreign, ["cube", "cone"], ["ring"], per_class=1, size=16, progress=False, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_cli_writes_the_dataset_and_reports_bad_classes_in_one_line(cli, tmp_path):
    res = cli("synth", "--out", tmp_path / "ds", "--task-classes", "cube,cone", "--ti-classes", "ring",
              "--per-class", "2", "--size", "16", "--seed", "1")
    assert res.exit_code == 0, res.stderr
    assert len(labeled_folder(tmp_path / "ds" / "source")) == 4
    assert "images" in res.stdout + res.stderr
    bad = cli("synth", "--out", tmp_path / "bad", "--task-classes", "cube,cone", "--ti-classes", "cone")
    assert bad.exit_code == 1
    assert "disjoint" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()
    shapes = cli("synth", "--list-shapes")
    assert shapes.exit_code == 0 and "torus" in shapes.stdout
    assert cli("synth").exit_code == 1
