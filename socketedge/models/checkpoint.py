"""Source checkpoints: one safetensors file whose header carries the JSON metadata. Loading never unpickles."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import save_file

from socketedge.errors import ModelError
from socketedge.models.source_model import FORMAT_VERSION, ModelMeta, SourceModel, build_source_model
from socketedge.utils.atomic import atomic_path
from socketedge.utils.versions import versions

META_KEY = "socketedge"


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write a safetensors file via a temporary name so an interruption never leaves half a file."""
    with atomic_path(Path(path)) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def read_tensors(path: Path, what: str = "checkpoint", load: bool = True,
                 ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header metadata) of a safetensors file; ``load=False`` reads the header only."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()} if load else {}
    except Exception as e:  # safetensors raises SafetensorError / OSError / ValueError on foreign files
        raise ModelError(
            f"{path} is not a socketedge {what} (expected a safetensors file; pickled .pth/.pt files are never "
            f"loaded here — wrap them with `socketedge import-source`): {type(e).__name__}") from None
    return tensors, header


def torch_load_tensors(path: Path, what: str, instead: str):
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never pickled code. A file it
    refuses or cannot read is one ModelError saying what the file is and what to do (``instead``) — torch's own
    message is a page long and, cut to a line, ends mid-word."""
    import pickle
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower() or "weights_only" in str(e):
            raise ModelError(f"{path} holds pickled Python objects (e.g. a whole model or an optimizer object), not "
                             f"just tensors, and socketedge never unpickles them (they can run code); {instead}"
                             ) from None
        raise ModelError(f"{path} is not a PyTorch {what} (not a torch.save file); {instead}") from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, AttributeError, TypeError):
        raise ModelError(f"{path} is not a readable PyTorch {what} (empty, truncated or another format); "
                         f"{instead}") from None


def save_source(model: SourceModel, path: Path) -> Path:
    meta = model.meta.model_copy(update={"versions": versions()})
    atomic_save_tensors(model.state_dict(), Path(path), {META_KEY: meta.model_dump_json()})
    return Path(path)


def parse_meta(raw: str | None, path: Path) -> ModelMeta:
    if raw is None:
        raise ModelError(f"{path} is a safetensors file without socketedge metadata; wrap it with "
                         "`socketedge import-source`")
    try:
        data = json.loads(raw)
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ModelError(f"{path} was written by a newer socketedge (format {data['format_version']}); upgrade")
        return ModelMeta.model_validate(data)
    except (ValueError, ValidationError) as e:
        first = str(e).splitlines()[0]
        raise ModelError(f"{path} has invalid socketedge metadata: {first}") from None


def read_source_meta(path: Path) -> ModelMeta:
    """A source checkpoint's metadata without reading its weights."""
    return parse_meta(read_tensors(path, load=False)[1].get(META_KEY), Path(path))


def load_state_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str, arch: str,
                       num_classes: int) -> None:
    """load_state_dict that reports missing, unexpected or mis-shaped tensors as one ModelError line."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        detail = ", ".join(f"{n} {label}" for n, label in ((len(missing), "missing"), (len(unexpected), "unexpected"),
                                                            (len(shapes), "mis-shaped")) if n)
        first = (shapes or missing or unexpected)[0]
        raise ModelError(f"{what}: weights do not match architecture {arch!r} with {num_classes} classes "
                         f"({detail} tensors, e.g. {first!r})")
    model.load_state_dict(state, strict=True)


def load_source(path: Path, map_location: str | torch.device = "cpu") -> SourceModel:
    path = Path(path)
    tensors, header = read_tensors(path)
    meta = parse_meta(header.get(META_KEY), path)
    model = build_source_model(meta)
    load_state_checked(model, tensors, str(path), meta.arch, meta.num_classes)
    return model.to(map_location).eval()
