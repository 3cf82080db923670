"""SUN RGB-D import: released layout → source / target / TI folders read back with socketedge.data.folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from socketedge.data.folders import labeled_folder, paired_folder, target_folder
from socketedge.data.imageio import read_image
from socketedge.data.importers import import_dataset
from socketedge.data.importers.sunrgbd import unshift_depth
from socketedge.errors import ConfigError, DataError

SENSORS = ("kv1", "kv2", "realsense", "xtion")
# bedroom / office: in every sensor; classroom: in every sensor but once in realsense; kitchen: kv1 + kv2 only;
# idk: SUN RGB-D's "unlabelled", in every sensor (never a task class).
LAYOUT = {
    "kv1": {"bedroom": 3, "office": 2, "classroom": 2, "kitchen": 2, "idk": 1},
    "kv2": {"bedroom": 2, "office": 2, "classroom": 2, "kitchen": 1, "idk": 1},
    "realsense": {"bedroom": 2, "office": 2, "classroom": 1, "idk": 1},
    "xtion": {"bedroom": 2, "office": 3, "classroom": 2, "idk": 1},
}


def test_unshift_matches_toolbox_formula():
    mm = np.array([0, 1, 800, 3000, 8191, 65535 >> 3], np.uint16)
    encoded = (mm << np.uint16(3)) | (mm >> np.uint16(13))
    assert np.array_equal(unshift_depth(encoded), mm)
    # bitor(bitshift(v,-3), bitshift(v,13)) on a raw value with the low 3 bits set
    assert unshift_depth(np.array([0b1010000000000101], np.uint16))[0] == (0b1010000000000101 >> 3) | (0b101 << 13)


def test_import_derives_common_classes_and_reads_back(sunrgbd_release, tmp_path):
    root, truth = sunrgbd_release(LAYOUT)
    out = tmp_path / "sun"
    report = import_dataset("sunrgbd", root, out, show_progress=False)

    assert report.task_classes == ["bedroom", "classroom", "office"]
    assert report.ti_classes == ["idk", "kitchen"]
    assert report.counts["kv1"] == {"bedroom": 3, "classroom": 2, "idk": 1, "kitchen": 2, "office": 2}
    assert report.depth_scale == dict.fromkeys(SENSORS, 0.001)

    for sensor in SENSORS:
        src = labeled_folder(out / sensor / "source", "rgb")
        assert src.class_names == ["bedroom", "classroom", "office"]
        assert len(src) == sum(n for c, n in LAYOUT[sensor].items() if c in report.task_classes)
        tgt = target_folder(out / sensor / "target")
        assert tgt.modality == "depth" and tgt.class_names == src.class_names
        assert sorted(it.key for it in tgt.items) == sorted(it.key for it in src.items)
        for it in tgt.items:
            label, mm = truth[(sensor, it.path.stem)]
            assert it.key.split("/")[0] == label
            assert np.array_equal(read_image(it.path, "depth"), mm)  # unshifted: raw millimetres

    ti = paired_folder(out / "ti")
    assert ti.modalities == ("rgb", "depth")
    assert len(ti) == sum(LAYOUT[s].get(c, 0) for s in SENSORS for c in ("idk", "kitchen"))
    for a, b in zip(ti.a.items, ti.b.items):
        sensor, stem = b.path.stem.split("__", 1)
        assert truth[(sensor, stem)][0] == a.key.split("/")[0]
        assert np.array_equal(read_image(b.path, "depth"), truth[(sensor, stem)][1])

    manifest = json.loads((out / "import.json").read_text())
    assert manifest["dataset"] == "sunrgbd"
    assert manifest["split"]["task_classes"] == ["bedroom", "classroom", "office"]
    assert manifest["domains"]["realsense"]["task_counts"] == {"bedroom": 2, "classroom": 1, "office": 2}
    assert manifest["domains"]["kv1"]["depth_scale"] == 0.001
    assert manifest["ti"]["counts"] == {"idk": 4, "kitchen": 3}
    assert manifest["sunrgbd"]["paper_task_class_count"] == 17
    assert any("the paper uses 17" in n for n in manifest["notes"])


def test_rgb_copied_byte_for_byte(sunrgbd_release, tmp_path):
    root, _ = sunrgbd_release({s: {"bedroom": 1, "office": 1} for s in SENSORS})
    out = tmp_path / "sun"
    import_dataset("sunrgbd", root, out, show_progress=False)
    written = sorted((out / "kv1" / "source").rglob("*.jpg"))
    assert len(written) == 2
    for w in written:
        scene = root / "kv1" / w.stem.replace("__", "/")
        original = next((scene / "image").glob("*.jpg"))
        assert w.read_bytes() == original.read_bytes()


def test_min_per_sensor_bfx_and_named_split(sunrgbd_release, tmp_path):
    root, truth = sunrgbd_release(LAYOUT)
    report = import_dataset("sunrgbd", root, tmp_path / "a", min_per_sensor=2, depth_source="bfx",
                            show_progress=False)
    assert report.task_classes == ["bedroom", "office"]
    assert "classroom" in report.ti_classes
    tgt = target_folder(tmp_path / "a" / "xtion" / "target")
    it = tgt.items[0]
    assert np.array_equal(read_image(it.path, "depth"), truth[("xtion", it.path.stem)][1] + 5)

    named = import_dataset("sunrgbd", root, tmp_path / "b", task_classes=["kitchen", "office"],
                           show_progress=False)
    assert named.task_classes == ["kitchen", "office"]
    assert any("no samples in some sensor" in n for n in named.notes)


def test_bad_input(sunrgbd_release, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        import_dataset("sunrgbd", tmp_path / "nope", tmp_path / "o", show_progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="none of the sensor folders"):
        import_dataset("sunrgbd", tmp_path / "empty", tmp_path / "o", show_progress=False)
    root, _ = sunrgbd_release({"kv1": {"bedroom": 1, "office": 1}})
    with pytest.raises(DataError, match="has no kv2/"):
        import_dataset("sunrgbd", root, tmp_path / "o", show_progress=False)
    report = import_dataset("sunrgbd", root.parent, tmp_path / "o", sensors=["kv1"], show_progress=False)
    assert report.task_classes == ["bedroom", "office"]  # the folder holding SUNRGBD/ works too
    with pytest.raises(ConfigError, match="unknown class 'bathroom'"):
        import_dataset("sunrgbd", root, tmp_path / "p", sensors=["kv1"], task_classes=["bathroom", "office"],
                       show_progress=False)
    with pytest.raises(DataError, match="--overwrite"):
        import_dataset("sunrgbd", root, tmp_path / "o", sensors=["kv1"], show_progress=False)
    import_dataset("sunrgbd", root, tmp_path / "o", sensors=["kv1"], overwrite=True, show_progress=False)
    assert not list(tmp_path.glob(".o.partial-*"))


def test_corrupt_file_leaves_nothing_behind(sunrgbd_release, tmp_path):
    root, _ = sunrgbd_release({s: {"bedroom": 2, "office": 2} for s in SENSORS})
    bad = sorted((root / "kv2").rglob("depth/*.png"))[0]
    from socketedge.data.imageio import write_image

    write_image(bad, np.zeros((8, 8), np.uint8))  # an 8-bit PNG where the release has 16-bit depth
    with pytest.raises(DataError, match="uint8") as err:
        import_dataset("sunrgbd", root, tmp_path / "sun", workers=2, show_progress=False)
    assert str(bad) in str(err.value)
    assert not (tmp_path / "sun").exists()
    assert not list(tmp_path.glob(".sun.partial-*"))
