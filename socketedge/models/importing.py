"""Bring-your-own source models: load a user's weights (never executing pickled code) and wrap them."""

from __future__ import annotations

from pathlib import Path

import torch

from socketedge.errors import ConfigError, DataError, ModelError
from socketedge.models.checkpoint import save_source, torch_load_tensors
from socketedge.models.source_model import MIN_INPUT_SIZE, SourceModel, wrap_torchvision_classifier
from socketedge.utils.outputs import check_output_file


def read_class_list(path: Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"class list {path} does not exist; expected a text file with one class name per line")
    try:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"class list {path} is not a text file; expected one class name per line") from None
    if len(names) < 2:
        raise DataError(f"class list {path} has {len(names)} names; expected one per line, at least 2")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"class list {path} names {', '.join(repeated)} more than once; each output needs its "
                        "own name")
    return names


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    instead = ("in the environment that made it, save the weights alone: torch.save(model.state_dict(), "
               "'weights.pt') or a .safetensors file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception:  # noqa: BLE001 - SafetensorError / OSError / ValueError on foreign or truncated files
            raise ModelError(f"{path} is not a readable .safetensors file (empty, truncated or another format); "
                             f"{instead}") from None
    else:
        state = torch_load_tensors(path, "weights file", instead)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a state dict of tensors")
    # DataParallel / DistributedDataParallel checkpoints prefix every key with "module."
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def import_source(arch: str, weights: Path, classes: Path, out: Path,
                  input_size: int | None = None) -> tuple[Path, SourceModel]:
    check_output_file(out, "--out", "src.ckpt")
    if input_size is not None and input_size < MIN_INPUT_SIZE:
        raise ConfigError(f"--input-size {input_size}: expected at least {MIN_INPUT_SIZE} pixels (the size the "
                          "model was trained at, e.g. 224)")
    names = read_class_list(classes)
    model = wrap_torchvision_classifier(arch, read_state_dict(weights), names, input_size=input_size)
    model.meta = model.meta.model_copy(update={"train_config": {"imported_from": str(weights)}})
    return save_source(model, out), model
