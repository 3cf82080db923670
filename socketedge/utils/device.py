"""Device selection: `auto` means CUDA when present, else CPU; asking for CUDA without it is a user error."""

from __future__ import annotations

import torch

from socketedge.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    if name not in DEVICES and not name.startswith("cuda:"):
        raise ConfigError(f"unknown device {name!r}; expected one of {', '.join(DEVICES)} or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} asked for CUDA but torch sees no GPU; use --device cpu or auto")
    return torch.device(name)
