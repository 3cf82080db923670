import numpy as np
import pytest

from socketedge.data.folders import labeled_folder, paired_folder, target_folder
from socketedge.data.imageio import read_image, write_image
from socketedge.errors import ConfigError, DataError


def test_labeled_folder(make_dataset):
    root = make_dataset(per_class=3)
    s = labeled_folder(root)
    assert s.class_names == ["a", "b", "c", "d"] and len(s) == 12
    assert {it.label for it in s.items} == {0, 1, 2, 3}


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        labeled_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty"):
        labeled_folder(tmp_path / "empty")
    (tmp_path / "d" / "cat").mkdir(parents=True)
    (tmp_path / "d" / "dog").mkdir(parents=True)
    write_image(tmp_path / "d" / "cat" / "1.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="class folder .*dog has no images"):
        labeled_folder(tmp_path / "d")


def test_class_mismatch_against_model(make_dataset):
    root = make_dataset(classes=("a", "zebra"), per_class=1)
    with pytest.raises(DataError, match=r"classes \['zebra'\] that the model does not know"):
        labeled_folder(root, class_names=["a", "b"])


def test_paired_folder_matches_by_name_not_position(make_dataset):
    root = make_dataset(per_class=3, modalities=("rgb", "depth"))
    # remove one depth file: its rgb partner must be dropped, the others stay matched by key
    (root / "depth" / "b" / "b_0001.png").unlink()
    pairs = paired_folder(root)
    assert pairs.modalities == ("rgb", "depth") and len(pairs) == 11
    assert [i.key for i in pairs.a.items] == [i.key for i in pairs.b.items]
    assert "b/b_0001" not in {i.key for i in pairs.a.items}


def test_paired_folder_without_pairs(tmp_path):
    write_image(tmp_path / "p" / "rgb" / "x.png", np.zeros((4, 4, 3), np.uint8))
    write_image(tmp_path / "p" / "depth" / "y.png", np.zeros((4, 4), np.uint16))
    with pytest.raises(DataError, match="no rgb/depth pairs share a name"):
        paired_folder(tmp_path / "p")
    write_image(tmp_path / "q" / "rgb" / "x.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="must hold rgb/ and one target modality"):
        paired_folder(tmp_path / "q")


def test_target_folder_flat_or_classes_modality_from_name(make_dataset):
    flat = make_dataset("t", per_class=2, modalities=("depth",), labeled=False)
    s = target_folder(flat)
    assert s.modality == "depth" and s.class_names is None and len(s) == 8
    labeled = make_dataset("l", per_class=2, modalities=("depth",))
    s = target_folder(labeled / "depth")
    assert s.class_names == ["a", "b", "c", "d"]


def test_target_folder_needs_modality_when_ambiguous(tmp_path):
    write_image(tmp_path / "frames" / "x.png", np.zeros((4, 4), np.uint16))
    with pytest.raises(ConfigError, match="cannot tell the modality"):
        target_folder(tmp_path / "frames")
    assert target_folder(tmp_path / "frames", "depth").modality == "depth"


def test_unreadable_image_is_one_line(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot decode image .*bad.png"):
        read_image(bad, "rgb")


def test_depth_must_be_16_bit(tmp_path):
    write_image(tmp_path / "d.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="expected 16-bit"):
        read_image(tmp_path / "d.png", "depth")
    write_image(tmp_path / "e.png", np.full((4, 4), 1234, np.uint16))
    assert read_image(tmp_path / "e.png", "depth").max() == 1234
