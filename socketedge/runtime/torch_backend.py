"""torch backend, for debugging: runs an adapted bundle (directory) or a source checkpoint (.ckpt) directly, with
the same preprocessing module the exported graph contains. torch is imported only when a model is opened."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from socketedge.errors import ConfigError, DeviceError
from socketedge.export.metadata import ModelCard
from socketedge.runtime.backends import Backend, free_cores, register_backend


def card_for_ensemble(ensemble, model: Path) -> ModelCard:
    """The card an export of ``ensemble`` would carry (what `run` needs: classes, modality, input type)."""
    from socketedge.models.bundle import is_bundle, read_manifest
    from socketedge.utils.versions import versions

    specs = [m.preprocess.spec for m in ensemble.members]
    depth = ensemble.modality == "depth"
    method = read_manifest(model).method if is_bundle(model) else "source"
    return ModelCard(class_names=list(ensemble.class_names), modality=ensemble.modality,
                     input_dtype=specs[0].raw_dtype, input_units="depth_raw" if depth else "intensity_8bit",
                     depth_scale=specs[0].depth_scale if depth else None,
                     preprocessing=[s.model_dump() for s in specs], zeta=[float(z) for z in ensemble.zeta],
                     sources=[m.model.meta.arch for m in ensemble.members], method=method, precision="fp32",
                     versions=versions())


@register_backend("torch")
class TorchBackend(Backend):
    suffixes = (".ckpt", ".safetensors")

    @classmethod
    def accepts(cls, path: Path) -> bool:
        # any directory: load_ensemble says clearly when it is not a bundle, and checking here would import torch
        return Path(path).is_dir() or super().accepts(path)

    @classmethod
    def what_it_opens(cls) -> str:
        return "adapted bundle directories and source checkpoints (.ckpt / .safetensors)"

    @classmethod
    def open(cls, model: Path, provider: str = "auto", threads: int | None = None, require_gpu: bool = False,
             iobinding: bool | None = None) -> "TorchBackend":
        import torch

        from socketedge.models.loading import load_ensemble

        if provider == "tensorrt":
            raise ConfigError("--provider tensorrt needs an exported .onnx or .engine; the torch backend runs on "
                              "cpu or cuda")
        if require_gpu and not torch.cuda.is_available():
            raise DeviceError("--require-gpu: torch sees no CUDA GPU; use --provider cpu or install a CUDA torch")
        device = torch.device("cuda" if provider in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
        if provider == "cuda" and device.type != "cuda":
            raise DeviceError("--provider cuda: torch sees no CUDA GPU; use --provider cpu or auto")
        ensemble = load_ensemble([Path(model)]).eval().to(device)
        return cls(model, card_for_ensemble(ensemble, Path(model)), ensemble, device, threads or free_cores())

    def __init__(self, model: Path, card: ModelCard, ensemble, device, threads: int):
        import torch

        super().__init__(model, card)
        self.torch = torch
        self.ensemble = ensemble
        self.device = device
        self._threads = threads
        if device.type == "cpu":
            torch.set_num_threads(threads)

    @property
    def providers(self) -> list[str]:
        return [f"torch {self.torch.__version__} ({self.device})"]

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    @property
    def threads(self) -> int | None:
        return None if self.on_gpu else self._threads

    def infer(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        if frames.dtype == np.uint16:  # torch's uint16 has few kernels; the values fit int32 exactly
            frames = frames.astype(np.int32)
        with torch.inference_mode():
            probs = self.ensemble(torch.from_numpy(np.ascontiguousarray(frames)).to(self.device))
        probs = probs.float().cpu().numpy()
        return probs, probs.argmax(1).astype(np.int64)
