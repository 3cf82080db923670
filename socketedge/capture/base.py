"""Frame sources behind one interface, opened by URI: realsense://, k4a://, file://, session://, synthetic://, …

A source is a context manager: entering opens the device or file, leaving always releases it (errors and
Ctrl-C included). ``read()`` returns the next Frame or None at the end of a finite stream.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from socketedge.errors import ConfigError
from socketedge.registry import Registry


@dataclass
class Intrinsics:
    width: int
    height: int
    fx: float
    fy: float
    ppx: float
    ppy: float
    model: str = "none"
    coeffs: list[float] = field(default_factory=lambda: [0.0] * 5)


@dataclass
class Extrinsics:
    rotation: list[float]  # 9 values, column-major as librealsense reports them
    translation: list[float]  # metres


@dataclass
class SensorInfo:
    sensor: str  # e.g. "Intel RealSense D435", "Azure Kinect", "synthetic"
    serial: str = ""
    firmware: str = ""
    depth_scale: float = 0.001  # metres per raw depth unit
    modalities: tuple[str, ...] = ("rgb", "depth")
    color_intrinsics: Intrinsics | None = None
    depth_intrinsics: Intrinsics | None = None
    depth_to_color: Extrinsics | None = None
    depth_aligned_to_color: bool = False
    fps: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["modalities"] = list(self.modalities)
        return d


@dataclass
class Frame:
    index: int
    timestamp: float  # seconds (device clock when the source has one)
    color: np.ndarray | None = None  # H×W×3 uint8 RGB
    depth: np.ndarray | None = None  # H×W uint16 raw sensor units
    infrared: np.ndarray | None = None  # H×W uint8 (NIR) — also used for thermal sources
    label: str | None = None
    meta: dict = field(default_factory=dict)

    def image(self, modality: str) -> np.ndarray | None:
        return {"rgb": self.color, "depth": self.depth, "nir": self.infrared, "thermal": self.infrared}[modality]


class FrameSource(abc.ABC):
    scheme: str = ""
    live: bool = False  # a camera (True) or a finite recording/folder/generator (False)

    def __init__(self, uri: str, **options):
        self.uri = uri
        self.options = options
        self.info: SensorInfo | None = None

    @property
    def target(self) -> str:
        """What follows ``scheme://`` (a serial, an index, a path), without the query."""
        return parse_uri(self.uri)[1]

    def option(self, name: str, default=None, cast=str):
        """An option from the URI query or keyword arguments, converted with ``cast`` (bool understands
        1/0/true/false/yes/no/on/off); a value that does not convert is a one-line ConfigError."""
        value = self.options.get(name)
        if value is None or value == "":
            return default
        try:
            if cast is bool:
                return as_bool(value)
            return value if isinstance(value, cast) else cast(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.scheme or 'source'} option {name}={value!r} is not a valid "
                              f"{getattr(cast, '__name__', cast)}; fix {self.uri!r}") from None

    @abc.abstractmethod
    def open(self) -> SensorInfo: ...

    @abc.abstractmethod
    def read(self) -> Frame | None: ...

    def close(self) -> None:  # noqa: B027 - sources without resources need nothing
        pass

    def __enter__(self) -> "FrameSource":
        self.info = self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame


def as_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


SOURCES: Registry[type[FrameSource]] = Registry("frame source")


def register_source(scheme: str):
    return SOURCES.register_class(scheme, "scheme")


def parse_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """'realsense://123?fps=30' → ('realsense', '123', {'fps': '30'}). A bare path means file:// or folder."""
    if "://" not in uri:
        raise ConfigError(f"frame source {uri!r} is not a URI; expected one of "
                          + ", ".join(f"{s}://" for s in SOURCES.names()))
    parts = urlsplit(uri)
    target = (parts.netloc + parts.path) if parts.scheme != "file" else (parts.netloc + parts.path)
    return parts.scheme, target, dict(parse_qsl(parts.query))


def open_source(uri: str, **options) -> FrameSource:
    """Build (not yet open) the frame source for ``uri``; use it as a context manager."""
    _load_builtin_sources()
    scheme, _, query = parse_uri(uri)
    cls = SOURCES.get(scheme)
    return cls(uri, **{**query, **options})


def _load_builtin_sources() -> None:
    import importlib
    import pkgutil

    import socketedge.capture as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name.startswith("source_"):
            importlib.import_module(f"socketedge.capture.{mod.name}")
