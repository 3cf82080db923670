"""folder:// replays images in sorted order; labels from class folders; modality from the name or the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from socketedge.capture.base import open_source
from socketedge.data.imageio import write_image
from socketedge.errors import ConfigError, DataError


def test_depth_folder_in_sorted_order(tmp_path):
    folder = tmp_path / "depth"
    written = {}
    for name in ("b/0002", "a/0010", "a/0002", "b/0001"):
        img = np.full((8, 10), 100 + len(written), np.uint16)
        write_image(folder / f"{name}.png", img)
        written[name] = img
    with open_source(f"folder://{folder}") as src:
        assert src.info.modalities == ("depth",)
        frames = list(src)
    assert [f.label for f in frames] == ["a", "a", "b", "b"]
    assert [f.meta["path"].split("depth/")[1] for f in frames] == ["a/0002.png", "a/0010.png", "b/0001.png",
                                                                  "b/0002.png"]
    assert np.array_equal(frames[0].depth, written["a/0002"]) and frames[0].depth.dtype == np.uint16


def test_modality_guessed_from_pixels(tmp_path):
    write_image(tmp_path / "x" / "1.png", np.full((4, 4), 7, np.uint16))
    with open_source(f"folder://{tmp_path / 'x'}") as src:
        assert src.info.modalities == ("depth",)
    write_image(tmp_path / "y" / "1.png", np.zeros((4, 4, 3), np.uint8))
    with open_source(f"folder://{tmp_path / 'y'}") as src:
        assert src.read().color.shape == (4, 4, 3)
    with open_source(f"folder://{tmp_path / 'y'}?modality=nir") as src:
        assert src.read().infrared.shape == (4, 4)


def test_bad_folders(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_source(f"folder://{tmp_path}/nope").__enter__()
    with pytest.raises(DataError, match="no images"):
        open_source(f"folder://{tmp_path}").__enter__()
    with pytest.raises(ConfigError, match="modality"):
        open_source(f"folder://{tmp_path}?modality=sonar").__enter__()
