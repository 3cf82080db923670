"""Adapted bundles: a directory holding the adapted encoders, frozen classifiers, ζ, preprocessing, config and
metrics. Written atomically (weights via a temporary file; the manifest last)."""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel, Field, ValidationError

from socketedge.data.preprocess import Preprocessing
from socketedge.errors import ModelError
from socketedge.models.checkpoint import atomic_save_tensors, load_state_checked, read_tensors
from socketedge.models.ensemble import Ensemble, Member
from socketedge.models.source_model import ModelMeta, build_source_model
from socketedge.utils.atomic import write_json_atomic  # noqa: F401 - re-exported: its home is torch-free
from socketedge.utils.versions import versions

BUNDLE_MANIFEST = "bundle.json"
BUNDLE_WEIGHTS = "weights.safetensors"
BUNDLE_VERSION = 1


class BundleManifest(BaseModel):
    format_version: int = BUNDLE_VERSION
    kind: str = "bundle"
    method: str
    class_names: list[str]
    modality: str
    sources: list[ModelMeta]
    source_paths: list[str] = Field(default_factory=list)
    preprocessing: list[Preprocessing]  # one per source (input size / statistics differ per architecture)
    zeta: list[float]
    config: dict = Field(default_factory=dict)
    summary: dict = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)


def save_bundle(out: Path, ensemble: Ensemble, method: str, config: dict, summary: dict | None = None,
                source_paths: list[str] | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"sources.{k}.{name}": t for k, m in enumerate(ensemble.members)
               for name, t in m.model.state_dict().items()}
    atomic_save_tensors(tensors, out / BUNDLE_WEIGHTS, {"socketedge": "bundle"})
    manifest = BundleManifest(
        method=method, class_names=ensemble.class_names, modality=ensemble.modality,
        sources=[m.model.meta for m in ensemble.members], source_paths=source_paths or [],
        preprocessing=[m.preprocess.spec for m in ensemble.members], zeta=ensemble.zeta.tolist(),
        config=config, summary=summary or {}, versions=versions())
    write_json_atomic(out / BUNDLE_MANIFEST, manifest.model_dump_json(indent=2))
    return out


def is_bundle(path: Path) -> bool:
    return (Path(path) / BUNDLE_MANIFEST).is_file()


def read_manifest(path: Path) -> BundleManifest:
    path = Path(path)
    if not is_bundle(path):
        raise ModelError(f"{path} is not an adapted bundle (no {BUNDLE_MANIFEST}); run `socketedge adapt` first")
    try:
        manifest = BundleManifest.model_validate_json((path / BUNDLE_MANIFEST).read_text())
    except ValidationError as e:
        raise ModelError(f"{path / BUNDLE_MANIFEST} is invalid: {str(e).splitlines()[0]}") from None
    if manifest.format_version > BUNDLE_VERSION:
        raise ModelError(f"{path} was written by a newer socketedge (format {manifest.format_version}); upgrade")
    return manifest


def load_bundle(path: Path) -> tuple[Ensemble, BundleManifest]:
    path = Path(path)
    manifest = read_manifest(path)
    tensors, _ = read_tensors(path / BUNDLE_WEIGHTS, "bundle weights")
    members = []
    for k, (meta, prep) in enumerate(zip(manifest.sources, manifest.preprocessing)):
        model = build_source_model(meta)
        prefix = f"sources.{k}."
        state = {name[len(prefix):]: t for name, t in tensors.items() if name.startswith(prefix)}
        load_state_checked(model, state, f"{path} source {k}", meta.arch, meta.num_classes)
        members.append(Member(model, prep))
    return Ensemble(members, torch.tensor(manifest.zeta)).eval(), manifest
