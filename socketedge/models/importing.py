"""Bring-your-own source models: load a user's weights (never executing pickled code) and wrap them."""

from __future__ import annotations

from pathlib import Path

import torch

from socketedge.errors import DataError, ModelError
from socketedge.models.checkpoint import save_source
from socketedge.models.source_model import SourceModel, wrap_torchvision_classifier


def read_class_list(path: Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"class list {path} does not exist; expected a text file with one class name per line")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) < 2:
        raise DataError(f"class list {path} has {len(names)} names; expected one per line, at least 2")
    return names


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError for anything but plain tensors/containers
            raise ModelError(f"{path} is not a plain state dict (refusing to unpickle arbitrary objects; save "
                             f"model.state_dict() instead of the model): {str(e).splitlines()[0][:120]}") from None
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
    names = read_class_list(classes)
    model = wrap_torchvision_classifier(arch, read_state_dict(weights), names, input_size=input_size)
    model.meta = model.meta.model_copy(update={"train_config": {"imported_from": str(weights)}})
    return save_source(model, out), model
