"""`eval`: accuracy, per-class accuracy, confusion matrix (PNG) and a metrics JSON for one model or an ensemble.

Frames are read at their native resolution and resized by the model's own preprocessing, exactly as the
exported graph does under `socketedge run --source folder://DIR`: `eval`, the accuracy `adapt` reports and the
exported model agree frame for frame."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from socketedge.data.folders import labeled_folder, resolve_modality
from socketedge.errors import ConfigError, DataError
from socketedge.models.ensemble import Ensemble
from socketedge.models.loading import load_ensemble
from socketedge.models.predict import accuracy, predict
from socketedge.utils.atomic import atomic_path, write_json_atomic, write_text_atomic
from socketedge.utils.device import resolve_device
from socketedge.utils.outputs import check_output_dir


def data_modality(data: Path, modality: str | None, models: list[Path]) -> str:
    """Explicit --modality, else the data folder's name / its single target subfolder, else the model's."""
    if modality:
        return modality
    try:
        return resolve_modality(Path(data), None)[1]
    except ConfigError:  # ambiguous folder: fall back to what the model expects
        from socketedge.models.bundle import is_bundle, read_manifest
        from socketedge.models.checkpoint import read_source_meta

        first = Path(models[0])
        return read_manifest(first).modality if is_bundle(first) else read_source_meta(first).modality


def metrics_from_predictions(probs: torch.Tensor, labels: torch.Tensor, class_names: list[str]) -> dict:
    pred = probs.argmax(1)
    c = len(class_names)
    confusion = torch.zeros(c, c, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    per_class = {}
    for i, name in enumerate(class_names):
        total = int(confusion[i].sum())
        if total:
            per_class[name] = 100.0 * int(confusion[i, i]) / total
    return {
        "accuracy": accuracy(pred, labels),
        "mean_class_accuracy": sum(per_class.values()) / max(len(per_class), 1),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
        "class_names": class_names,
        "n": int(labels.numel()),
    }


def plot_confusion(metrics: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = np.array(metrics["confusion"], dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    names = metrics["class_names"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(names), 1.0 + 0.5 * len(names)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(f"{title}\naccuracy {metrics['accuracy']:.1f}%")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(Path(path), durable=False) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


def evaluate_ensemble(ensemble: Ensemble, data: Path, modality: str, device: str = "auto",
                      batch_size: int = 64, show_progress: bool = True) -> tuple[dict, list[dict]]:
    images = labeled_folder(data, modality, class_names=ensemble.class_names)
    labels = torch.tensor([it.label for it in images.items], dtype=torch.long)
    dev = resolve_device(device)
    probs = predict(ensemble.to(dev), images, dev, batch_size, desc=f"evaluating on {modality}",
                    show_progress=show_progress).probs
    metrics = metrics_from_predictions(probs, labels, ensemble.class_names)
    metrics["modality"] = modality
    metrics["data"] = str(data)
    conf, pred = probs.max(1)
    rows = [{"key": k, "label": ensemble.class_names[int(t)], "pred": ensemble.class_names[int(p)], "score": float(s)}
            for k, t, p, s in zip([it.key for it in images.items], labels, pred, conf)]
    return metrics, rows


def evaluate(models: list[Path], data: Path, modality: str | None = None, out: Path | None = None,
             device: str = "auto", batch_size: int = 64, depth_scale: float | None = None,
             depth_range: tuple[float, float] | None = None, show_progress: bool = True) -> dict:
    """Evaluate ``models`` (an equal-weight ensemble when several) on labeled target data."""
    if not models:
        raise DataError("no model given; pass a source .ckpt or an adapted bundle")
    if out is not None:
        check_output_dir(out, "--out")
    modality = data_modality(Path(data), modality, models)
    ensemble = load_ensemble(models, modality, depth_scale, depth_range)
    metrics, rows = evaluate_ensemble(ensemble, Path(data), modality, device, batch_size, show_progress)
    metrics["models"] = [str(m) for m in models]
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "metrics.json", metrics)
        write_text_atomic(out / "predictions.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        plot_confusion(metrics, out / "confusion.png", " + ".join(Path(m).name for m in models) + f" on {modality}")
        metrics["outputs"] = {"metrics": str(out / "metrics.json"), "confusion": str(out / "confusion.png"),
                              "predictions": str(out / "predictions.jsonl")}
    return metrics
