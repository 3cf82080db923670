"""Open any model a command accepts: a source checkpoint (.ckpt) or an adapted bundle (directory)."""

from __future__ import annotations

from pathlib import Path

from socketedge.data.preprocess import preprocessing_for
from socketedge.errors import ModelError
from socketedge.models.bundle import is_bundle, load_bundle
from socketedge.models.checkpoint import load_source
from socketedge.models.ensemble import Ensemble, Member, check_same_classes, merge


def load_ensemble(paths: list[Path], modality: str | None = None, depth_scale: float | None = None,
                  depth_range: tuple[float, float] | None = None) -> Ensemble:
    """One ensemble from several models (equal weight between models; a bundle keeps its own ζ).

    A source checkpoint is fed ``modality`` frames (default: the modality it was trained on); a bundle uses the
    preprocessing recorded at adaptation unless a modality or depth option overrides it.
    """
    if not paths:
        raise ModelError("no model given")
    parts: list[Ensemble] = []
    for path in map(Path, paths):
        if path.is_dir():
            if not is_bundle(path):
                raise ModelError(f"{path} is a directory but not an adapted bundle (no bundle.json)")
            ensemble, manifest = load_bundle(path)
            if modality and modality != manifest.modality:
                raise ModelError(f"{path} was adapted to {manifest.modality} but --modality {modality} was given")
            if depth_scale is not None or depth_range is not None:
                for m in ensemble.members:
                    spec = m.preprocess.spec
                    m.preprocess.spec = preprocessing_for(
                        spec, spec.modality, spec.depth_scale if depth_scale is None else depth_scale,
                        (spec.depth_near, spec.depth_far) if depth_range is None else depth_range, spec.input_size)
            parts.append(ensemble)
        else:
            model = load_source(path)
            prep = preprocessing_for(model.meta, modality or model.meta.modality, depth_scale, depth_range)
            parts.append(Ensemble([Member(model, prep)]))
    check_same_classes([e.members[0].model for e in parts], [str(p) for p in paths])
    return parts[0] if len(parts) == 1 else merge(parts)
