"""Camera profiles: YAML files in calibration/ with a sensor's default streams, valid depth range, nominal depth
scale and post-filter settings. A profile supplies defaults only; intrinsics, extrinsics and the depth scale are
always read from the device or recording. See calibration/README.md for the fields.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from socketedge.errors import ConfigError

ENV_DIR = "SOCKETEDGE_CALIBRATION_DIR"


def calibration_dirs() -> list[Path]:
    dirs = []
    if os.environ.get(ENV_DIR):
        dirs.append(Path(os.environ[ENV_DIR]))
    dirs.append(Path.cwd() / "calibration")
    dirs.append(Path(__file__).resolve().parents[2] / "calibration")  # a source checkout / editable install
    seen, out = set(), []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


@dataclass
class CameraProfile:
    name: str
    sensor: str
    sdk: str  # "realsense" or "k4a"
    streams: dict
    depth_scale: float
    depth_range: tuple[float, float]  # metres
    filters: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # emitter, laser_power, ...
    path: Path | None = None

    def source_options(self) -> dict:
        """The profile as frame-source options (what realsense:// or k4a:// accept)."""
        out: dict = {}
        depth, color = self.streams.get("depth", {}), self.streams.get("color", {})
        if self.sdk == "realsense":
            for key in ("width", "height", "fps"):
                if key in depth:
                    out[key] = depth[key]
                if key in color:
                    out[f"color_{key}"] = color[key]
            enabled = self.filters.get("enabled") or []
            out["filters"] = ",".join(enabled)
            for key in ("decimation", "hole_filling"):
                if key in self.filters:
                    out[key] = self.filters[key]
            for block in ("spatial", "temporal"):
                for k, v in (self.filters.get(block) or {}).items():
                    out[f"{block}_{k}"] = v
        else:
            for key in ("color_resolution", "depth_mode", "fps"):
                for stream in (color, depth):
                    if key in stream:
                        out[key] = stream[key]
        out["min_depth"], out["max_depth"] = self.depth_range
        out.update(self.options)
        return out


def available_profiles() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in calibration_dirs():
        for p in sorted(d.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


def _require(data: dict, key: str, path: Path):
    if key not in data:
        raise ConfigError(f"camera profile {path} has no {key!r}; see calibration/README.md for the fields")
    return data[key]


def load_profile(name_or_path: str | Path) -> CameraProfile:
    """A profile by name (``d435``) from calibration/ or by path to a YAML file."""
    import yaml

    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        profiles = available_profiles()
        key = str(name_or_path).lower()
        if key not in profiles:
            close = difflib.get_close_matches(key, list(profiles), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown camera profile {name_or_path!r}{hint} valid: {', '.join(profiles) or 'none'}"
                              f" (looked in calibration/ and ${ENV_DIR})")
        path = profiles[key]
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"camera profile {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"camera profile {path} must be a mapping; see calibration/README.md")
    rng = _require(data, "depth_range", path)
    try:
        depth_range = (float(rng["min"]), float(rng["max"]))
    except (TypeError, KeyError, ValueError):
        raise ConfigError(f"camera profile {path}: depth_range needs min and max in metres") from None
    sdk = _require(data, "sdk", path)
    if sdk not in ("realsense", "k4a"):
        raise ConfigError(f"camera profile {path}: sdk {sdk!r} is not one of realsense, k4a")
    return CameraProfile(name=path.stem, sensor=str(_require(data, "sensor", path)), sdk=sdk,
                         streams=dict(_require(data, "streams", path)),
                         depth_scale=float(_require(data, "depth_scale", path)), depth_range=depth_range,
                         filters=dict(data.get("filters") or {}), options=dict(data.get("options") or {}), path=path)


def with_profile(options: dict) -> dict:
    """Source options with the defaults of ``options['profile']`` (if any) filled in; explicit options win."""
    name = options.get("profile")
    if not name:
        return options
    return {**load_profile(name).source_options(), **options}
