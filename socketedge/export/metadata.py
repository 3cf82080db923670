"""The exported model's card: what `run` needs to use a model with no other flag. Stored as ONNX
``metadata_props`` (string → string; structured values JSON-encoded) and as the sidecar JSON of TensorRT
engines. Imports neither torch nor onnx, so the runtime can read it anywhere.

Graph contract: input ``frames`` (N, 1, H, W) uint16 depth in sensor units or uint8 NIR/thermal, N/H/W dynamic;
outputs ``probs`` (N, C) float32 class probabilities and ``label`` (N,) int64 argmax.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

PREFIX = "socketedge."
INPUT_NAME = "frames"
OUTPUT_PROBS = "probs"
OUTPUT_LABEL = "label"
CARD_VERSION = 1
#: onnxruntime graph transformers every socketedge session turns off (``InferenceSession(disabled_optimizers=…)``).
#: WeightBiasQuantization quantizes the float weights of a Conv / Gemm that sits between a DequantizeLinear and a
#: QuantizeLinear to per-tensor int8 when the session loads: it would silently turn the layers a mixed-precision
#: graph keeps float32 (export/precision.py) back into int8 kernels, with coarser weights than the rest. It does
#: nothing to fp32 graphs or fully quantized ones (their weights and biases are quantized already).
ORT_DISABLED_OPTIMIZERS = ["WeightBiasQuantization"]


class ModelCard(BaseModel):
    format_version: int = CARD_VERSION
    class_names: list[str]
    modality: str  # depth | nir | thermal | rgb
    input_dtype: str  # uint16 | uint8
    input_units: str  # "depth_raw" (× depth_scale = metres) | "intensity_8bit"
    depth_scale: float | None = None
    preprocessing: list[dict]  # one Preprocessing per source, as recorded at adaptation
    zeta: list[float]
    sources: list[str]  # architectures
    method: str = "source"  # socket | shot | decision | source (unadapted)
    precision: str = "fp32"  # fp32 | fp16 | int8
    versions: dict[str, str] = Field(default_factory=dict)
    bundle_sha256: str = ""
    parity: dict = Field(default_factory=dict)  # the parity report; parity["passed"] is a bool
    extra: dict = Field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        out = {}
        for key, value in self.model_dump().items():
            out[PREFIX + key] = value if isinstance(value, str) else json.dumps(value)
        return out

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "ModelCard":
        data = {}
        for key, value in props.items():
            if not key.startswith(PREFIX):
                continue
            name = key[len(PREFIX):]
            field = cls.model_fields.get(name)
            if field is None:
                continue
            data[name] = value if field.annotation is str else json.loads(value)
        return cls.model_validate(data)

    @property
    def parity_passed(self) -> bool | None:
        return self.parity.get("passed") if self.parity else None
