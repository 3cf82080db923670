"""The export format / precision table: what `socketedge export` can write and how each precision is judged.

Formats and precisions are looked up by name in registries (an unknown name lists the valid ones). A format
says which file suffix it writes and which precisions it accepts; a precision says how its parity is judged
against the fp32 PyTorch model (fp32 by the largest absolute error of the probabilities, reduced precisions by
top-1 agreement) and its default threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from socketedge.errors import ConfigError
from socketedge.registry import Registry


@dataclass(frozen=True)
class PrecisionSpec:
    name: str
    #: "max_abs" (pass when max |Δp| <= threshold) or "top1" (pass when agreement >= threshold)
    criterion: str
    threshold: float
    description: str


@dataclass(frozen=True)
class FormatSpec:
    name: str
    suffix: str
    precisions: tuple[str, ...]
    description: str
    extra: str = ""  # the optional dependency group it needs, if any


PRECISIONS: Registry[PrecisionSpec] = Registry("precision")
FORMATS: Registry[FormatSpec] = Registry("export format")

PRECISIONS.register("fp32", PrecisionSpec("fp32", "max_abs", 1e-4, "float32 graph"))
PRECISIONS.register("fp16", PrecisionSpec(
    "fp16", "top1", 0.99, "float16 encoders and classifiers; preprocessing, mixing and graph I/O stay float32"))
PRECISIONS.register("int8", PrecisionSpec(
    "int8", "top1", 0.97, "static Q/DQ int8 (per-channel weights) calibrated on target frames"))

FORMATS.register("onnx", FormatSpec("onnx", ".onnx", ("fp32", "fp16", "int8"), "one self-contained ONNX file"))
FORMATS.register("tensorrt", FormatSpec(
    "tensorrt", ".engine", ("fp32", "fp16", "int8"),
    "TensorRT engine built from the exported ONNX (precision taken from the graph) + sidecar JSON", "tensorrt"))


def resolve(fmt: str, precision: str) -> tuple[FormatSpec, PrecisionSpec]:
    f, p = FORMATS.get(fmt), PRECISIONS.get(precision)
    if p.name not in f.precisions:
        raise ConfigError(f"format {f.name} does not support precision {p.name}; use one of {', '.join(f.precisions)}")
    return f, p
