"""Tiny fixtures in each dataset's exact released folder structure, built from the shared generated images
(``make_dataset``: class-dependent RGB + depth in millimetres), so imports can be checked value for value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from socketedge.data.imageio import read_image, write_image

# Where scene folders sit inside each SUN RGB-D sensor folder (as in the release: varying depths and names).
SUN_SCENE_DIRS = {
    "kv1": ["NYUdata/NYU{i:04d}", "b3dodata/img_{i:04d}"],
    "kv2": ["kinect2data/{i:06d}_2014-05-26_14-23-37_260595134347_rgbf000103-resize",
            "align_kv2/2014-12-18_11-35-31_094959634447_rgbf{i:06d}-resize"],
    "realsense": ["lg/2014_10_24-14_26_28-13110000{i:02d}", "sa/2014_10_21-18_10_{i:02d}-1311000073",
                  "sh/2014_10_22-12_01_{i:02d}-1311000081", "shr/2014_10_23-15_49_{i:02d}-1311000091"],
    "xtion": ["sun3ddata/mit_32_d507/d507_2/{i:010d}-{i:012d}", "xtion_align_data/2014_10_12-11_{i:02d}"],
}
BFX_OFFSET = 5  # depth_bfx/ holds the raw depth + 5 mm in the fixture, so tests can tell the two apart


def sun_encode(mm: np.ndarray) -> np.ndarray:
    """Millimetres → the release's PNG value (inverse of the 3-bit circular shift the toolbox undoes)."""
    return (mm << np.uint16(3)) | (mm >> np.uint16(13))


def _gen_images(make_dataset, name: str, classes: list[str], per_class: int, size: int):
    """{class: [(rgb uint8 HxWx3, depth uint16 mm), …]} from the shared generator."""
    gen = make_dataset(name, classes=classes, per_class=per_class, modalities=("rgb", "depth"), size=size)
    out = {}
    for c in classes:
        files = sorted((gen / "rgb" / c).glob("*.png"))
        out[c] = [(read_image(f, "rgb"), read_image(gen / "depth" / c / f.name, "depth")) for f in files]
    return out


@pytest.fixture
def sunrgbd_release(tmp_path, make_dataset):
    """make(layout={sensor: {scene_class: n}}) → the SUNRGBD/ folder; also returns {(sensor, stem): mm}."""

    def make(layout: dict[str, dict[str, int]], size: int = 40):
        root = tmp_path / "SUNRGBD"
        classes = sorted({c for per in layout.values() for c in per})
        need = {c: sum(per.get(c, 0) for per in layout.values()) for c in classes}
        imgs = _gen_images(make_dataset, "sun_gen", classes, max(need.values()), size)
        used = dict.fromkeys(classes, 0)
        truth = {}
        for sensor, per in layout.items():
            i = 0
            for c, n in sorted(per.items()):
                for _ in range(n):
                    i += 1
                    templates = SUN_SCENE_DIRS[sensor]
                    rel = templates[i % len(templates)].format(i=i)
                    scene = root / sensor / rel
                    rgb, mm = imgs[c][used[c]]
                    used[c] += 1
                    name = f"{i:07d}"
                    write_image(scene / "image" / f"{name}.jpg", rgb)
                    write_image(scene / "depth" / f"{name}.png", sun_encode(mm))
                    write_image(scene / "depth_bfx" / f"{name}.png", sun_encode(mm + np.uint16(BFX_OFFSET)))
                    (scene / "scene.txt").write_text(c)  # the release has no trailing newline
                    (scene / "intrinsics.txt").write_text("529.5 0 365 0 529.5 265 0 0 1\n")
                    (scene / "extrinsics").mkdir()
                    (scene / "extrinsics" / "20140101.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 0\n")
                    (scene / "annotation2Dfinal").mkdir()
                    (scene / "annotation2Dfinal" / "index.json").write_text("{}")
                    write_image(scene / "fullres" / f"{name}.jpg", rgb)  # not a scene of its own
                    stem = "__".join(Path(rel).parts)
                    truth[(sensor, stem)] = (c, mm)
        return root, truth

    return make


RGBNIR_CATEGORIES = ["country", "field", "forest", "indoor", "mountain", "oldbuilding", "street", "urban", "water"]


@pytest.fixture
def rgbnir_release(tmp_path, make_dataset):
    """make(per_class) → folder of the 9 category folders with NNNN_rgb.tiff / NNNN_nir.tiff pairs
    (NIR = the red channel, 8-bit, like the release's single-channel NIR TIFFs); also {(class, id): (rgb, nir)}."""

    def make(per_class: int = 3, size: int = 40, categories=RGBNIR_CATEGORIES, orphan: bool = True):
        root = tmp_path / "nirscene1"
        imgs = _gen_images(make_dataset, "nir_gen", list(categories), per_class, size)
        truth, n = {}, 0
        for c in categories:
            for rgb, _ in imgs[c]:
                n += 1
                ident = f"{n:04d}"
                nir = np.ascontiguousarray(rgb[..., 0])
                write_image(root / c / f"{ident}_rgb.tiff", rgb)
                write_image(root / c / f"{ident}_nir.tiff", nir)
                truth[(c, ident)] = (rgb, nir)
        if orphan:  # an RGB file whose NIR partner is missing: skipped with a note, not an error
            write_image(root / categories[0] / "9999_rgb.tiff", imgs[categories[0]][0][0])
        return root, truth

    return make


DIML_CATEGORIES = ["01. Bathroom", "02. Bedroom", "03. Book Store", "04. Cafe", "05. Classroom",
                   "06. Computer Room", "07. Corridor", "08. Library"]


@pytest.fixture
def diml_release(tmp_path, make_dataset):
    """make(per_class) → DIML sample root: indoor/{train,test}/LR/<NN. Category>/{color,depth_filled}/…"""

    def make(per_class: int = 3, size: int = 40, categories=DIML_CATEGORIES, quality: str = "LR"):
        root = tmp_path / "DIML_sample"
        plain = [c.split(". ", 1)[1].lower().replace(" ", "_") for c in categories]
        imgs = _gen_images(make_dataset, "diml_gen", plain, per_class, size)
        truth = {}
        for folder, c in zip(categories, plain):
            for i, (rgb, mm) in enumerate(imgs[c]):
                split = "train" if i % 3 else "test"
                base = root / "indoor" / split / quality / folder
                name = f"in_k_00_170925_{i:06d}"
                write_image(base / "color" / f"{name}_c.png", rgb)
                write_image(base / "depth_filled" / f"{name}_depth_filled.png", mm)
                truth[(c, f"{split}_{name}")] = (rgb, mm)
        return root, truth

    return make

