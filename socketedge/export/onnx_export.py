"""FusedModel → one self-contained, checked, cleaned ONNX graph with dynamic batch / height / width.

Exporter choice: torch 2.14's default dynamo exporter (``torch.export`` + onnxscript). The legacy TorchScript
exporter (``dynamo=False``) cannot take the raw uint16 depth frame as a graph input (its shape/type inference
rejects ``UInt16``), and the in-graph bilinear resize with dynamic H/W exports cleanly through dynamo as one
``Resize`` with a constant output size. Dynamo already folds constants (``optimize=True``); onnxslim then removes
what is left over (duplicate constants, identity ops) and the result passes ``onnx.checker`` with
``full_check=True`` (strict shape inference included).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch

from socketedge.export.metadata import INPUT_NAME, OUTPUT_LABEL, OUTPUT_PROBS, ModelCard
from socketedge.fuse import FusedModel
from socketedge.utils.atomic import atomic_path

OPSET = 18
TWO_GB = 2 * 1024**3


def example_frames(fused: FusedModel, dtype: torch.dtype, batch: int = 2) -> torch.Tensor:
    """An example input whose sizes differ from every model input size (so the resize is traced, never
    specialised away) and whose batch is not 0/1 (which torch.export would specialise)."""
    size = max(p.spec.input_size for p in fused.preprocess)
    channels = fused.preprocess[0].spec.channels  # 1: depth / NIR / thermal; 3: an 8-bit colour target
    info = torch.iinfo(dtype)
    high = min(info.max, 8000)  # depth: a few metres in mm; 8-bit: the full range
    return torch.randint(0, high + 1, (batch, channels, size + 16, size + 24), dtype=torch.int32).to(dtype)


@contextlib.contextmanager
def _quiet():
    """The dynamo exporter prints progress lines and warns about things that are fine here."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        level = logging.getLogger("torch").level
        logging.getLogger("torch").setLevel(logging.ERROR)
        try:
            yield
        finally:
            logging.getLogger("torch").setLevel(level)


def torch_to_onnx(fused: FusedModel, example: torch.Tensor) -> onnx.ModelProto:
    """Export with dynamic N/H/W, opset ``OPSET``, constants folded, weights inside the file."""
    dim = torch.export.Dim.DYNAMIC
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(
            fused.eval(), (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_PROBS, OUTPUT_LABEL],
            dynamic_shapes={"frames": {0: dim, 2: dim, 3: dim}}, opset_version=OPSET, dynamo=True,
            external_data=False, optimize=True, verbose=False)
    model = program.model_proto
    _name_dynamic_dims(model)
    return model


def _name_dynamic_dims(model: onnx.ModelProto) -> None:
    """Give the exporter's symbols (s0, s41, …) readable names: N (batch), H, W, everywhere in the graph."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    rename = {d.dim_param: name for d, name in zip(dims, ("N", None, "H", "W")) if d.dim_param and name}
    values = [*model.graph.input, *model.graph.output, *model.graph.value_info]
    for value in values:
        for d in value.type.tensor_type.shape.dim:
            if d.dim_param in rename:
                d.dim_param = rename[d.dim_param]


def clean(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim: constant folding, dead-code and redundant-op removal (keeps names of graph inputs/outputs)."""
    import onnxslim

    with _quiet():
        slimmed = onnxslim.slim(model)
    return slimmed if slimmed is not None else model


def graph_of(fused: FusedModel) -> onnx.ModelProto:
    """The cleaned ONNX graph of ``fused``, exported with example frames of its raw input dtype."""
    return clean(torch_to_onnx(fused, example_frames(fused, getattr(torch, fused.preprocess[0].spec.raw_dtype))))


def check(model: onnx.ModelProto) -> None:
    """onnx.checker with full_check (runs strict shape inference); raises on an invalid graph (a bug)."""
    if model.ByteSize() >= TWO_GB:
        onnx.checker.check_model(model, full_check=False)  # the checker needs a path above 2 GB; structure only
        return
    onnx.checker.check_model(model, full_check=True)


def set_metadata(model: onnx.ModelProto, card: ModelCard) -> None:
    """Replace the socketedge.* metadata_props with ``card`` (other keys are kept)."""
    props = card.to_props()
    keep = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for key, value in [*keep, *props.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write one self-contained file (no external data below 2 GB) atomically."""
    path = Path(path)
    large = model.ByteSize() >= TWO_GB
    with atomic_path(path) as tmp:
        onnx.save_model(model, str(tmp), save_as_external_data=large,
                        location=path.name + ".data" if large else None)
    return path


def opset_of(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
