"""What a folder's depth values mean: its depth scale (metres per raw unit) and valid range (metres), as recorded
beside the images or given on the command line, and the check that catches depth read with the wrong units.

Where units are recorded:

- a capture session: ``session.json`` → ``sensor.depth_scale`` (and ``sensor.depth_range`` [near, far] if known);
- an import (``socketedge import``): ``OUT/import.json`` → ``ti.depth_scale`` / ``ti.depth_range`` for
  ``OUT/ti/…`` and ``domains.<d>.depth_scale`` for ``OUT/<d>/…`` (older imports: the domains' common scale
  stands for the TI pairs too).

Task-irrelevant pairs may come from another dataset than the target (the paper's Table 5: SUN RGB-D pairs for a
DIML target), so their units are resolved on their own and both are honoured: each set's raw values become
metres with its own scale, pixels outside its own valid range count as missing (0), and then the model's
preprocessing (its clip range) applies to both alike. An option that contradicts what the folder records, or
depth whose typical value lands outside its valid range at the resolved scale (the mark of a wrong unit: 2 m in
millimetres read at 0.1 mm per unit is 0.2 m), is an error rather than a silently mis-scaled training signal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socketedge.data.session import SESSION_MANIFEST
from socketedge.data.importers.base import IMPORT_MANIFEST
from socketedge.errors import ConfigError, DataError

_SEARCH_UP = 4  # a folder given to a command sits at most this many levels below its import.json


@dataclass(frozen=True)
class DepthUnits:
    """A depth set's units; ``None`` fields are unknown. ``origin`` says where they came from, for messages."""

    scale: float | None = None  # metres per raw unit
    valid: tuple[float, float] | None = None  # metres; outside = no measurement
    origin: str = ""


def _session_root(folder: Path) -> Path | None:
    for root in (folder, folder.parent, folder.parent.parent):
        if (root / SESSION_MANIFEST).is_file():
            return root
    return None


def _range(value, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        near, far = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: depth_range must be [near, far] in metres, got {value!r}") from None
    return near, far


def _from_session(root: Path) -> DepthUnits:
    where = str(root / SESSION_MANIFEST)
    try:
        sensor = json.loads((root / SESSION_MANIFEST).read_text()).get("sensor") or {}
    except (OSError, ValueError) as e:
        raise DataError(f"{where} is unreadable ({str(e).splitlines()[0]})") from None
    scale = sensor.get("depth_scale")
    return DepthUnits(float(scale) if scale else None, _range(sensor.get("depth_range"), where), where)


def _from_import(root: Path, rel: Path) -> DepthUnits:
    where = str(root / IMPORT_MANIFEST)
    try:
        manifest = json.loads((root / IMPORT_MANIFEST).read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{where} is unreadable ({str(e).splitlines()[0]})") from None
    first = rel.parts[0] if rel.parts else ""
    ti = manifest.get("ti") or {}
    if first == ti.get("path", "ti"):
        scale = ti.get("depth_scale")
        if scale is None:  # imports written before the TI set recorded its own units: the domains' common scale
            scales = {s for s in (manifest.get("depth_scale") or {}).values() if s}
            scale = scales.pop() if len(scales) == 1 else None
        return DepthUnits(scale, _range(ti.get("depth_range"), where), f"{where} (ti)")
    dom = (manifest.get("domains") or {}).get(first)
    if dom is None:
        return DepthUnits(origin=where)
    return DepthUnits(dom.get("depth_scale"), _range(dom.get("depth_range"), where), f"{where} (domain {first})")


def recorded_units(folder: Path) -> DepthUnits:
    """The depth units recorded for ``folder`` (a session, or a folder inside an import), else empty."""
    folder = Path(folder).resolve()
    session = _session_root(folder)
    if session is not None:
        return _from_session(session)
    probe = folder
    for _ in range(_SEARCH_UP):
        if (probe / IMPORT_MANIFEST).is_file():
            return _from_import(probe, folder.relative_to(probe))
        if probe.parent == probe:
            break
        probe = probe.parent
    return DepthUnits()


def resolve_units(folder: Path, scale: float | None, valid: tuple[float, float] | None, scale_option: str,
                  range_option: str, fallback: DepthUnits | None = None) -> DepthUnits:
    """The units of ``folder``'s depth: the recorded ones, the options, or ``fallback`` (in that order of
    authority where they agree). An option that contradicts the record is a ConfigError naming both."""
    rec = recorded_units(folder)
    if scale is not None and rec.scale is not None and not math.isclose(scale, rec.scale, rel_tol=1e-6):
        raise ConfigError(f"{scale_option} {scale:g} contradicts the depth scale {rec.scale:g} m/unit recorded in "
                          f"{rec.origin} for {folder}; drop the option or correct the record")
    if valid is not None and rec.valid is not None and not all(
            math.isclose(a, b, rel_tol=1e-6) for a, b in zip(valid, rec.valid)):
        raise ConfigError(f"{range_option} {valid[0]:g},{valid[1]:g} contradicts the valid range "
                          f"{rec.valid[0]:g},{rec.valid[1]:g} m recorded in {rec.origin} for {folder}")
    fb = fallback or DepthUnits()
    out_scale, scale_from = ((scale, scale_option) if scale is not None else
                             (rec.scale, rec.origin) if rec.scale is not None else (fb.scale, fb.origin))
    out_valid, valid_from = ((valid, range_option) if valid is not None else
                             (rec.valid, rec.origin) if rec.valid is not None else (fb.valid, fb.origin))
    if out_scale is not None and out_scale <= 0:
        raise ConfigError(f"{scale_option} must be positive (metres per depth unit), got {out_scale:g}")
    if out_valid is not None and not 0 <= out_valid[0] < out_valid[1]:
        raise ConfigError(f"{range_option} must satisfy 0 <= near < far (metres), got {out_valid}")
    origin = scale_from if scale_from == valid_from or out_valid is None else f"{scale_from}; range {valid_from}"
    return DepthUnits(out_scale, out_valid, origin or "default")


def check_depth_values(raw, scale: float, valid: tuple[float, float], what: str, hint: str,
                       max_frames: int = 64) -> float:
    """The median measured depth (metres) of up to ``max_frames`` raw frames; a DataError when it falls outside
    ``valid`` — the depth was recorded in other units than ``scale`` says. Frames with no measurement pass."""
    arr = np.asarray(raw[:max_frames] if len(raw) > max_frames else raw)
    values = arr[arr > 0]
    if values.size == 0:
        return float("nan")
    median = float(np.median(values)) * scale
    near, far = valid
    if not near <= median <= far:
        raise DataError(f"{what}: at {scale:g} m/unit its typical depth is {median:.3g} m, outside the valid range "
                        f"{near:g}–{far:g} m, so its units are not {scale:g} m/unit; {hint}")
    return median
