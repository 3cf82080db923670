"""Library versions recorded in every artifact."""

from __future__ import annotations

import importlib.metadata
import platform


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(*extra: str) -> dict[str, str]:
    names = ("socketedge", "torch", "torchvision", "onnx", "onnxruntime", "numpy", *extra)
    out = {"python": platform.python_version()}
    for n in names:
        v = package_version(n)
        if v is not None:
            out[n] = v
    if "socketedge" not in out:
        from socketedge import __version__

        out["socketedge"] = __version__
    return out
