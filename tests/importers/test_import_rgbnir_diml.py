"""RGB-NIR Scene and DIML imports: released layouts → folders read back; class splits by name and by seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from socketedge.data.folders import labeled_folder, paired_folder, target_folder
from socketedge.data.imageio import read_image
from socketedge.data.importers import import_dataset, plan_import
from socketedge.errors import ConfigError, DataError


def test_rgbnir_seeded_split_and_read_back(rgbnir_release, tmp_path):
    root, truth = rgbnir_release(per_class=2)
    out = tmp_path / "nir"
    report = import_dataset("rgbnir", root, out, seed=3, show_progress=False)
    assert len(report.task_classes) == 6 and len(report.ti_classes) == 3
    assert sorted(report.task_classes + report.ti_classes) == sorted({c for c, _ in truth})
    again = plan_import("rgbnir", root, seed=3).split
    assert again.task == report.task_classes  # the seed fixes the split
    assert len({tuple(plan_import("rgbnir", root, seed=s).split.task) for s in range(5)}) > 1
    assert any("9999" in n or "partner missing" in n for n in report.notes)

    src = labeled_folder(out / "nirscene" / "source", "rgb")
    assert src.class_names == report.task_classes and len(src) == 12
    for it in src.items:  # TIFF RGB → lossless PNG
        assert it.path.suffix == ".png"
        assert np.array_equal(read_image(it.path, "rgb"), truth[(it.key.split("/")[0], it.path.stem)][0])
    tgt = target_folder(out / "nirscene" / "target")
    assert tgt.modality == "nir" and len(tgt) == 12
    for it in tgt.items:
        img = read_image(it.path, "nir")
        assert img.dtype == np.uint8 and img.ndim == 2
        assert np.array_equal(img, truth[(it.key.split("/")[0], it.path.stem)][1])
    ti = paired_folder(out / "ti")
    assert ti.modalities == ("rgb", "nir") and len(ti) == 6
    assert sorted({it.key.split("/")[0] for it in ti.a.items}) == report.ti_classes

    manifest = json.loads((out / "import.json").read_text())
    assert manifest["split"]["rule"].startswith("6 of the 9 classes drawn with seed 3")
    assert manifest["domains"]["nirscene"]["target"] == "nirscene/target/nir"
    assert manifest["rgbnir"]["paper_split_confirmed"] is False


def test_rgbnir_split_by_name(rgbnir_release, tmp_path):
    root, _ = rgbnir_release(per_class=1, orphan=False)
    split = plan_import("rgbnir", root, ti_classes=["indoor", "oldbuilding", "urban"]).split
    assert split.ti == ["indoor", "oldbuilding", "urban"] and len(split.task) == 6
    split = plan_import("rgbnir", root, task_classes=["field", "forest"], ti_classes=["water"]).split
    assert (split.task, split.ti) == (["field", "forest"], ["water"])
    with pytest.raises(ConfigError, match="unknown class 'beach' in --task-classes"):
        plan_import("rgbnir", root, task_classes=["beach", "field"])
    with pytest.raises(ConfigError, match="both task-relevant and task-irrelevant"):
        plan_import("rgbnir", root, task_classes=["field", "forest"], ti_classes=["field"])
    with pytest.raises(ConfigError, match="--num-task 10"):
        plan_import("rgbnir", root, num_task=10)
    with pytest.raises(ConfigError, match="task_clases"):  # a misspelt option is an error, not ignored
        plan_import("rgbnir", root, task_clases=["field", "forest"])


def test_rgbnir_wrong_structure(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "country").mkdir()
    (tmp_path / "flat" / "country" / "readme.txt").write_text("no images")
    with pytest.raises(DataError, match="NNNN_rgb"):
        plan_import("rgbnir", tmp_path / "flat")


def test_diml_import_and_read_back(diml_release, tmp_path):
    root, truth = diml_release(per_class=3)
    out = tmp_path / "diml"
    report = import_dataset("diml", root, out, task_classes="bedroom,cafe,classroom,library,corridor,book_store"
                            .split(","), show_progress=False)
    assert report.task_classes == ["bedroom", "book_store", "cafe", "classroom", "corridor", "library"]
    assert report.ti_classes == ["bathroom", "computer_room"]
    assert report.depth_scale == {"diml": 0.001}
    tgt = target_folder(out / "diml" / "target")
    assert tgt.modality == "depth" and len(tgt) == 18
    assert {it.path.stem.split("_", 1)[0] for it in tgt.items} == {"train", "test"}
    for it in tgt.items:
        assert np.array_equal(read_image(it.path, "depth"), truth[(it.key.split("/")[0], it.path.stem)][1])
    src = labeled_folder(out / "diml" / "source", "rgb")
    for it in src.items:  # PNG colour copied as is
        assert np.array_equal(read_image(it.path, "rgb"), truth[(it.key.split("/")[0], it.path.stem)][0])
    assert len(paired_folder(out / "ti")) == 6

    only_train = plan_import("diml", root, splits=["train"], num_task=4, seed=1)
    assert all(p.stem.startswith("train_") for p in only_train.domains[0].pairs)


def test_diml_bad_input(diml_release, tmp_path):
    root, _ = diml_release(per_class=1)
    with pytest.raises(DataError, match="indoor/train/HR"):
        plan_import("diml", root, quality="HR")
    with pytest.raises(ConfigError, match="quality"):
        plan_import("diml", root, quality="XL")
    with pytest.raises(ConfigError, match="unknown DIML split 'val'"):
        plan_import("diml", root, splits=["val"])
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError, match="no indoor/ folder"):
        plan_import("diml", tmp_path / "other")
