"""Inference backends behind one interface, looked up by name: ``onnxruntime``, ``tensorrt``, ``torch``.

Every backend takes raw frames ``(N, 1, H, W)`` (uint16 depth in sensor units, or uint8 NIR/thermal) — the
preprocessing lives in the model — and returns ``probs`` (N, C) float32 and ``label`` (N,) int64. It also
carries the model card (class names, modality, precision) so ``run`` needs nothing but the model path, and says
which execution providers it really got (onnxruntime-gpu silently falls back to CPU).

Backend modules import their heavy library (onnxruntime, tensorrt, torch) only when a model is opened.
"""

from __future__ import annotations

import abc
import json
import os
from pathlib import Path

import numpy as np

from socketedge.errors import ConfigError, ModelError
from socketedge.export.metadata import ModelCard
from socketedge.registry import Registry

PROVIDER_CHOICES = ("auto", "cpu", "cuda", "tensorrt")


def free_cores() -> int:
    """Cores this process may run on (CPU affinity / cgroup-pinned sets respected), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS / Windows
        return max(1, os.cpu_count() or 1)


class Backend(abc.ABC):
    """An opened model. Use as a context manager or call ``close()``."""

    name: str = ""
    suffixes: tuple[str, ...] = ()  # model files this backend opens when --backend auto

    def __init__(self, model: Path, card: ModelCard):
        self.model = Path(model)
        self.card = card

    # -- what it runs on --------------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def providers(self) -> list[str]:
        """What really executes the graph, most preferred first (e.g. ['CUDAExecutionProvider', 'CPU…'])."""

    @property
    @abc.abstractmethod
    def on_gpu(self) -> bool: ...

    @property
    def threads(self) -> int | None:
        return None

    @property
    def precision(self) -> str:
        return self.card.precision

    @property
    def class_names(self) -> list[str]:
        return self.card.class_names

    def describe(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        return f"{self.name} [{', '.join(self.providers)}{threads}] {self.precision}"

    # -- inference --------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def infer(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1, H, W) raw frames → (probs (N, C) float32, label (N,) int64)."""

    def close(self) -> None:  # noqa: B027 - backends without native resources need nothing
        pass

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @classmethod
    def accepts(cls, path: Path) -> bool:
        return Path(path).suffix.lower() in cls.suffixes

    @classmethod
    def what_it_opens(cls) -> str:
        return " / ".join(cls.suffixes) + " files"


BACKENDS: Registry[type[Backend]] = Registry("runtime backend")


def register_backend(name: str):
    return BACKENDS.register_class(name, "name")


def _load_builtin_backends() -> None:
    # importing these modules is cheap: each imports its heavy library only inside ``open``
    from socketedge.runtime import onnx_backend, tensorrt_backend, torch_backend  # noqa: F401


def backend_names() -> list[str]:
    _load_builtin_backends()
    return BACKENDS.names()


def parse_backend_spec(spec: str) -> tuple[str, str | None]:
    """'onnxruntime-cuda' → ('onnxruntime', 'cuda'); 'torch' → ('torch', None); 'ort' is onnxruntime."""
    name, _, provider = spec.strip().partition("-")
    name = {"ort": "onnxruntime", "trt": "tensorrt"}.get(name, name)
    if provider and provider not in PROVIDER_CHOICES:
        raise ConfigError(f"unknown provider {provider!r} in backend {spec!r}; expected one of "
                          f"{', '.join(PROVIDER_CHOICES)} (e.g. onnxruntime-cuda)")
    return name, provider or None


def backend_for(model: Path) -> str:
    """The backend that opens ``model`` when none is named: .onnx → onnxruntime, .engine/.plan → tensorrt,
    a bundle directory or .ckpt → torch."""
    _load_builtin_backends()
    model = Path(model)
    if not model.exists():
        raise ModelError(f"model {model} does not exist; pass an exported .onnx, a TensorRT .engine (with its "
                         "sidecar .json) or an adapted bundle directory")
    for name in BACKENDS.names():
        if BACKENDS.get(name).accepts(model):
            return name
    raise ModelError(f"cannot tell how to run {model}: expected a .onnx file (socketedge export), a TensorRT "
                     ".engine/.plan with its sidecar JSON, or an adapted bundle directory / .ckpt")


def open_backend(model: Path | str, backend: str = "auto", provider: str = "auto", threads: int | None = None,
                 require_gpu: bool = False, iobinding: bool | None = None) -> Backend:
    """Open ``model`` with the named backend (``auto``: chosen from the file type).

    ``provider`` is auto|cpu|cuda|tensorrt (onnxruntime; torch understands auto|cpu|cuda). ``require_gpu``
    raises DeviceError unless the opened session really executes on a GPU. ``threads`` defaults to the free
    cores. ``iobinding`` defaults to on when running on a GPU.
    """
    _load_builtin_backends()
    model = Path(model)
    if provider not in PROVIDER_CHOICES:
        raise ConfigError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDER_CHOICES)}")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    name, spec_provider = parse_backend_spec(backend)
    if spec_provider:
        provider = spec_provider
    if name == "auto":
        name = backend_for(model)
    elif not model.exists():
        backend_for(model)  # raises the one-line "does not exist" error
    cls = BACKENDS.get(name)
    if not cls.accepts(model):
        raise ModelError(f"the {name} backend cannot open {model.name}; it runs {cls.what_it_opens()} "
                         f"(--backend auto picks {backend_for(model)} for this file)")
    return cls.open(model, provider=provider, threads=threads, require_gpu=require_gpu, iobinding=iobinding)


def card_from_json(data: dict, where: str) -> ModelCard:
    """A model card stored as JSON: either the card's fields or the ``socketedge.*`` props mapping."""
    from pydantic import ValidationError

    from socketedge.export.metadata import PREFIX

    try:
        if any(k.startswith(PREFIX) for k in data):
            return ModelCard.from_props({k: v if isinstance(v, str) else json.dumps(v)
                                         for k, v in data.items()})
        return ModelCard.model_validate(data)
    except (ValidationError, ValueError) as e:
        raise ModelError(f"{where} holds no valid socketedge model card ({str(e).splitlines()[0]}); "
                         "re-export the model with `socketedge export`") from None


def check_probs(probs: np.ndarray, card: ModelCard, where: str) -> None:
    if probs.ndim != 2 or probs.shape[1] != len(card.class_names):
        raise ModelError(f"{where} returned probs of shape {tuple(probs.shape)} but its card lists "
                         f"{len(card.class_names)} classes; re-export the model")
