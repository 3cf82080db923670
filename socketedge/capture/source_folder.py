"""A folder of images (``folder://DIR``) as a finite source, in sorted order: a target folder of depth PNGs, a
paired folder's modality subfolder, NIR or RGB images. Class folders (DIR/<class>/*.png) set ``Frame.label``.

Options: ``modality`` (rgb/depth/nir/thermal; default from the folder name, else from the first image: 16-bit
single channel → depth, colour → rgb, else nir), ``fps`` (timestamps = index / fps, default 30),
``depth_scale`` (metres per unit of depth images, default 0.001).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from socketedge.capture.base import Frame, FrameSource, SensorInfo, register_source
from socketedge.data.folders import resolve_modality
from socketedge.data.imageio import MODALITIES, is_image, read_image
from socketedge.errors import ConfigError, DataError


def guess_modality(path: Path) -> str:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError(f"cannot decode image {path}")
    if raw.ndim == 3 and raw.shape[2] >= 3:
        return "rgb"
    return "depth" if raw.dtype == np.uint16 else "nir"


@register_source("folder")
class FolderSource(FrameSource):
    live = False

    def open(self) -> SensorInfo:
        root = Path(self.target).expanduser()
        if not root.is_dir():
            raise DataError(f"image folder {root} does not exist or is not a directory")
        modality = self.option("modality")
        if modality is not None and modality not in MODALITIES:
            raise ConfigError(f"folder option modality={modality!r}; expected one of {', '.join(MODALITIES)}")
        try:
            folder, modality = resolve_modality(root, modality)
        except ConfigError:
            folder = root
        images = sorted((p for p in folder.rglob("*") if p.is_file() and is_image(p)
                         and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                        key=lambda p: p.relative_to(folder).as_posix())
        if not images:
            raise DataError(f"image folder {folder} holds no images (.png, .jpg, .tif, …)")
        if modality is None:
            modality = guess_modality(images[0])
        self._folder, self._images, self._modality, self._pos = folder, images, modality, 0
        self._fps = self.option("fps", 30.0, float)
        self.info = SensorInfo(sensor="image folder", depth_scale=self.option("depth_scale", 0.001, float),
                               modalities=(modality,), extra={"folder": str(folder)})
        return self.info

    def read(self) -> Frame | None:
        if self._pos >= len(self._images):
            return None
        path = self._images[self._pos]
        image = read_image(path, self._modality)
        rel = path.relative_to(self._folder)
        label = rel.parts[0] if len(rel.parts) > 1 else None
        slot = {"rgb": "color", "depth": "depth"}.get(self._modality, "infrared")
        frame = Frame(index=self._pos, timestamp=self._pos / self._fps, label=label,
                      meta={"path": str(path)}, **{slot: image})
        self._pos += 1
        return frame
