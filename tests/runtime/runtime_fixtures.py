"""Runtime test helpers: a small real ONNX classifier honouring the export contract, and a scriptable frame
source for failure injection."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socketedge.capture.base import Frame, FrameSource, SensorInfo
from socketedge.errors import DeviceError
from socketedge.export.metadata import INPUT_NAME, OUTPUT_LABEL, OUTPUT_PROBS, ModelCard

CLASSES = ["a", "b", "c", "d"]
CENTRES_M = [0.8, 1.2, 1.6, 2.0]  # socketedge.data.testing.class_image puts class k's box at 800 + 400 k mm
SHARPNESS = 20.0


def contract_card(classes=CLASSES, precision: str = "fp32") -> ModelCard:
    prep = {"modality": "depth", "input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "depth_scale": 0.001,
            "depth_near": 0.3, "depth_far": 5.0}
    return ModelCard(class_names=list(classes), modality="depth", input_dtype="uint16", input_units="depth_raw",
                     depth_scale=0.001, preprocessing=[prep], zeta=[1.0], sources=["nearest_depth"],
                     precision=precision)


def write_contract_onnx(path: Path, card: ModelCard | None = None, with_card: bool = True) -> Path:
    """frames (N,1,H,W) uint16 → probs (N,C), label (N,): softmax over −k (d_min − centre_c)², d_min the nearest
    valid depth in metres (clipped to [0.3, 5]): a nearest-box classifier
    matching socketedge.data.testing depth images."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    card = card or contract_card()
    c = len(card.class_names)
    centres = np.array(CENTRES_M[:c] + [2.4 + 0.4 * i for i in range(max(0, c - len(CENTRES_M)))], np.float32)
    w = np.stack([2 * SHARPNESS * centres, -SHARPNESS * np.ones(c, np.float32)]).astype(np.float32)  # (2, C)
    b = (-SHARPNESS * centres**2).astype(np.float32)
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["f", "scale"], ["m"]),
        helper.make_node("Clip", ["m", "near", "far"], ["d"]),
        helper.make_node("Where", ["invalid_mask", "far", "d"], ["dv"]),
        helper.make_node("ReduceMin", ["dv"], ["mn4"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Flatten", ["mn4"], ["mn"], axis=1),
        helper.make_node("Mul", ["mn", "mn"], ["mn2"]),
        helper.make_node("Concat", ["mn", "mn2"], ["feat"], axis=1),
        helper.make_node("MatMul", ["feat", "W"], ["z"]),
        helper.make_node("Add", ["z", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT_PROBS], axis=1),
        helper.make_node("ArgMax", [OUTPUT_PROBS], [OUTPUT_LABEL], axis=1, keepdims=0),
        helper.make_node("Equal", [INPUT_NAME, "zero"], ["invalid_mask"]),
    ]
    # topological order: the mask must exist before Where
    nodes = [nodes[0], nodes[1], nodes[2], nodes[-1]] + nodes[3:-1]
    inits = [numpy_helper.from_array(np.array(0.001, np.float32), "scale"),
             numpy_helper.from_array(np.array(0.3, np.float32), "near"),
             numpy_helper.from_array(np.array(5.0, np.float32), "far"),
             numpy_helper.from_array(np.array(0, np.uint16), "zero"),
             numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")]
    graph = helper.make_graph(
        nodes, "nearest_depth",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT16, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info(OUTPUT_PROBS, TensorProto.FLOAT, ["N", c]),
         helper.make_tensor_value_info(OUTPUT_LABEL, TensorProto.INT64, ["N"])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="socketedge-tests")
    model.ir_version = 9
    if with_card:
        for key, value in card.to_props().items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def reference_probs(depth: np.ndarray, classes=CLASSES) -> np.ndarray:
    """The contract model's output computed in numpy (for one H×W uint16 frame)."""
    d = np.clip(depth.astype(np.float32) * 0.001, 0.3, 5.0)
    d[depth == 0] = 5.0
    mn = d.min()
    centres = np.array(CENTRES_M[: len(classes)], np.float32)
    logits = -SHARPNESS * (mn - centres) ** 2
    e = np.exp(logits - logits.max())
    return e / e.sum()


def class_frames(n: int, seed: int = 0, size: int = 40) -> list[Frame]:
    from socketedge.data.testing import class_image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        _, depth = class_image(i % len(CLASSES), rng, size)
        out.append(Frame(index=i, timestamp=i / 30.0, depth=depth, label=CLASSES[i % len(CLASSES)]))
    return out


class ScriptedSource(FrameSource):
    """Plays ``frames`` (shared across reopenings, like a camera that keeps streaming). ``fail_at``: frame
    positions at which read() raises DeviceError once (the camera disappears); ``fail_opens`` consecutive
    open() failures after each loss. Counts opens/closes in ``log`` so tests can check the release."""

    scheme = "scripted"

    def __init__(self, frames: list[Frame], log: dict, fail_at=(), fail_opens: int = 0, live: bool = False,
                 delay_s: float = 0.0):
        super().__init__("scripted://test")
        self.frames, self.log = frames, log
        self.fail_at, self.fail_opens, self.live, self.delay_s = set(fail_at), fail_opens, live, delay_s
        log.setdefault("pos", 0)
        log.setdefault("opens", 0)
        log.setdefault("closes", 0)
        log.setdefault("failed", set())
        log.setdefault("open_failures_left", 0)

    def open(self) -> SensorInfo:
        if self.log["open_failures_left"] > 0:
            self.log["open_failures_left"] -= 1
            raise DeviceError("no device connected")
        self.log["opens"] += 1
        return SensorInfo(sensor="scripted", modalities=("depth",), fps=30.0)

    def read(self) -> Frame | None:
        import time

        pos = self.log["pos"]
        if pos in self.fail_at and pos not in self.log["failed"]:
            self.log["failed"].add(pos)
            self.log["open_failures_left"] = self.fail_opens
            raise DeviceError("USB device disconnected")
        if pos >= len(self.frames):
            return None
        if self.delay_s:
            time.sleep(self.delay_s)
        self.log["pos"] = pos + 1
        return self.frames[pos]

    def close(self) -> None:
        self.log["closes"] += 1
