"""Helpers for the export tests: tiny random and trained ensembles, bundles with a real depth target folder.

A uniquely named module (not conftest) so test files can import it: tests/ is not a package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from socketedge.data.imageio import read_image
from socketedge.data.preprocess import preprocessing_for
from socketedge.data.testing import write_dataset
from socketedge.models.bundle import save_bundle
from socketedge.models.ensemble import Ensemble, Member
from socketedge.models.source_model import new_source_model



CLASSES = ["a", "b", "c", "d"]


def random_ensemble(n: int = 2, modality: str = "depth", zeta=None, archs=None, seed: int = 0) -> Ensemble:
    """n random tiny sources whose BatchNorm layers hold non-trivial running statistics (so folding matters)."""
    torch.manual_seed(seed)
    archs = archs or ["tiny_cnn", "tiny_cnn_wide"][:n] + ["tiny_cnn"] * max(0, n - 2)
    members = []
    for arch in archs:
        model = new_source_model(arch, CLASSES)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
        members.append(Member(model.eval(), preprocessing_for(model.meta, modality)))
    return Ensemble(members, zeta).eval()


def depth_target(root: Path, per_class: int = 4, size: int = 40, seed: int = 0) -> Path:
    write_dataset(root, CLASSES, per_class, ("depth",), seed=seed, size=size, labeled=True)
    return root / "depth"


def make_bundle(tmp: Path, name: str, ensemble: Ensemble, target: Path | None) -> Path:
    config = {"modality": ensemble.modality}
    if target is not None:
        config["target"] = str(target.resolve())
    return save_bundle(tmp / name, ensemble, "socket", config)


def train_tiny(target: Path, steps: int = 60, seed: int = 0) -> Ensemble:
    """One tiny_cnn trained for a few steps on the labeled depth frames, so its predictions are not ties."""
    torch.manual_seed(seed)
    paths = sorted(target.rglob("*.png"))
    frames = torch.from_numpy(np.stack([read_image(p, "depth") for p in paths]).astype(np.int32))[:, None]
    labels = torch.tensor([CLASSES.index(p.parent.name) for p in paths])
    model = new_source_model("tiny_cnn", CLASSES)
    member = Member(model, preprocessing_for(model.meta, "depth"))
    opt = torch.optim.Adam(member.parameters(), lr=3e-3)
    member.train()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(member(frames), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return Ensemble([member.eval()]).eval()
