"""Decoding frames from disk: colour as 8-bit RGB, depth as 16-bit raw sensor units, NIR/thermal as 8-bit gray."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from socketedge.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MODALITIES = ("rgb", "depth", "nir", "thermal")
SINGLE_CHANNEL = ("depth", "nir", "thermal")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def read_image(path: Path, modality: str) -> np.ndarray:
    """HxWx3 uint8 for rgb; HxW uint16 for depth; HxW uint8 for nir/thermal. One-line DataError if unreadable."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.size == 0:
        raise DataError(f"cannot decode image {path}")
    if modality == "rgb":
        if raw.ndim == 2:
            raw = cv2.cvtColor(raw, cv2.COLOR_GRAY2RGB)
        elif raw.shape[2] == 4:
            raw = cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB)
        else:
            raw = cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
        return _to_uint8(raw, path)
    if raw.ndim == 3:  # a colour-mapped thermal/NIR file: use its luminance
        if modality == "depth":
            raise DataError(f"depth image {path} has {raw.shape[2]} channels; expected a single-channel 16-bit PNG")
        raw = cv2.cvtColor(raw[..., :3], cv2.COLOR_BGR2GRAY)
    if modality == "depth":
        if raw.dtype != np.uint16:
            raise DataError(f"depth image {path} is {raw.dtype}; expected 16-bit raw sensor units (uint16 PNG)")
        return raw
    return _to_uint8(raw, path)


def _to_uint8(raw: np.ndarray, path: Path) -> np.ndarray:
    if raw.dtype == np.uint8:
        return raw
    if raw.dtype == np.uint16:
        return (raw >> 8).astype(np.uint8)
    raise DataError(f"image {path} has unsupported pixel type {raw.dtype}")


def encode_image(image: np.ndarray, suffix: str) -> bytes:
    """RGB (HxWx3 uint8) or single-channel (uint8/uint16) image → the bytes of a ``suffix`` file (".png", ".jpg")."""
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    try:
        ok, buf = cv2.imencode(suffix, out)
    except cv2.error:
        ok = False
    if not ok:
        raise DataError(f"cannot encode a {image.dtype} {'x'.join(map(str, image.shape))} image as {suffix}")
    return buf.tobytes()


def write_image(path: Path, image: np.ndarray, durable: bool = False) -> None:
    """Encode in memory, then write atomically (every byte checked before the rename; fsynced if ``durable``):
    a full disk raises OSError and never leaves a truncated image under ``path``."""
    from socketedge.utils.atomic import write_bytes_atomic

    path = Path(path)
    write_bytes_atomic(path, encode_image(image, path.suffix.lower() or ".png"), durable=durable)
