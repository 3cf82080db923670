"""The ζ-weighted ensemble F_T(x) = Σ_k ζ_k · softmax(g_k(f_k(x))) over raw target frames.

Every member carries its own preprocessing (input size and RGB statistics differ between architectures); the
modality settings (depth scale, range) are shared. Member outputs are stacked and mixed with one einsum.
``member_outputs`` is the one pass of frames through the members: the ensemble's forward, evaluation over a
folder (socketedge.models.predict) and adaptation's pseudo-labels and reports all go through it.
"""

from __future__ import annotations

import torch
from torch import nn

from socketedge.data.preprocess import Preprocess, Preprocessing
from socketedge.errors import ModelError
from socketedge.models.source_model import SourceModel


class Member(nn.Module):
    def __init__(self, model: SourceModel, preprocessing: Preprocessing):
        super().__init__()
        self.preprocess = Preprocess(preprocessing)
        self.model = model

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    @property
    def classifier(self) -> nn.Module:
        return self.model.classifier

    def features(self, raw: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(self.preprocess(raw))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(raw))


def member_outputs(members, raw: torch.Tensor, preprocess: list[nn.Module] | None = None, sized: bool = False,
                   ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-member features K × (B, D_k) and float32 logits (K, B, C) of one batch of raw frames.

    ``preprocess`` replaces each member's own preprocessing (e.g. the RGB side of TI pairs); ``sized``: frames
    data.cache decoded at a size (see Preprocess.forward)."""
    feats, logits = [], []
    for k, m in enumerate(members):
        f = m.encoder((preprocess[k] if preprocess is not None else m.preprocess)(raw, sized=sized))
        feats.append(f)
        logits.append(m.classifier(f).float())
    return feats, torch.stack(logits)


def _one_value(models: list[SourceModel], names: list[str] | None, field: str, mismatch: str):
    """The value of ``meta.<field>`` shared by every model; ``mismatch`` (formatted with name, value, first,
    ref) is the error when one differs."""
    names = names or [str(i) for i in range(len(models))]
    ref = getattr(models[0].meta, field)
    for m, n in zip(models[1:], names[1:]):
        value = getattr(m.meta, field)
        if value != ref:
            raise ModelError(mismatch.format(name=n, value=value, first=names[0], ref=ref))
    return ref


def check_same_classes(models: list[SourceModel], names: list[str] | None = None) -> list[str]:
    return list(_one_value(models, names, "class_names", "{name} has classes {value} but {first} has {ref}; "
                           "all sources must share one class list, in the same order"))


def check_same_modality(models: list[SourceModel], names: list[str] | None = None) -> str:
    """The modality every source was trained on (recorded in its checkpoint); sources of several are an error."""
    return _one_value(models, names, "modality", "{name} was trained on {value} but {first} on {ref}; adapt "
                      "sources of one modality together")


class Ensemble(nn.Module):
    def __init__(self, members: list[Member], zeta: torch.Tensor | list[float] | None = None):
        super().__init__()
        if not members:
            raise ModelError("an ensemble needs at least one model")
        self.class_names = check_same_classes([m.model for m in members])
        self.members = nn.ModuleList(members)
        k = len(members)
        z = torch.full((k,), 1.0 / k) if zeta is None else torch.as_tensor(zeta, dtype=torch.float32)
        if z.shape != (k,) or (z < 0).any() or abs(float(z.sum()) - 1) > 1e-4:
            raise ModelError(f"mixing weights ζ must be {k} non-negative numbers summing to 1, got {z.tolist()}")
        self.register_buffer("zeta", z.clone())

    @property
    def modality(self) -> str:
        return self.members[0].preprocess.spec.modality

    def member_probs(self, raw: torch.Tensor) -> torch.Tensor:
        """(K, B, C) per-member class probabilities."""
        return member_outputs(self.members, raw)[1].softmax(dim=-1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.einsum("k,kbc->bc", self.zeta.to(raw.device), self.member_probs(raw))


def merge(ensembles: list[Ensemble]) -> Ensemble:
    """Equal-weight ensemble of several ensembles (each keeps its internal ζ)."""
    members = [m for e in ensembles for m in e.members]
    zeta = torch.cat([e.zeta / len(ensembles) for e in ensembles])
    return Ensemble(members, zeta)
