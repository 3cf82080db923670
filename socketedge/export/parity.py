"""Numerical parity of an exported graph against the fp32 PyTorch fused model, on the same raw frames.

For each batch size: the largest and mean absolute difference of the class probabilities and the fraction of
frames whose top-1 class agrees. fp32 is judged by the largest difference, reduced precisions by top-1
agreement (thresholds from the precision table, overridable).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from socketedge.export.formats import PrecisionSpec
from socketedge.export.frames import batches_of
from socketedge.export.metadata import INPUT_NAME, ORT_DISABLED_OPTIMIZERS
from socketedge.utils.progress import make_progress

if TYPE_CHECKING:
    from socketedge.fuse import FusedModel

BATCH_SIZES = (1, 8)


def measure(fused: "FusedModel", session, frames: list[np.ndarray], batch_sizes=BATCH_SIZES,
            progress=None) -> dict[str, dict]:
    """{"b1": {...}, "b8": {...}}: max_abs, mean_abs, top1 (agreement), frames, batches per batch size.
    ``progress``: a running rich Progress to add the bar to (one live display at a time)."""
    import contextlib

    import torch

    out: dict[str, dict] = {}
    plan = {b: batches_of(frames, b) for b in batch_sizes}
    with contextlib.nullcontext(progress) if progress is not None else make_progress(transient=True) as progress:
        task = progress.add_task("parity", total=sum(len(v) for v in plan.values()), terms="")
        for b, batches in plan.items():
            diffs, agree, n = [], 0, 0
            for x in batches:
                with torch.no_grad():
                    ref, _ = fused(torch.from_numpy(x))
                ref = ref.numpy()
                got = session.run(None, {INPUT_NAME: x})[0].astype(np.float32)
                diffs.append(np.abs(got - ref).reshape(-1))
                agree += int((got.argmax(1) == ref.argmax(1)).sum())
                n += x.shape[0]
                progress.advance(task)
            d = np.concatenate(diffs)
            out[f"b{b}"] = {"batch": b, "frames": n, "batches": len(batches), "max_abs": float(d.max()),
                            "mean_abs": float(d.mean()), "top1": agree / n}
    return out


def judge(results: dict[str, dict], spec: PrecisionSpec, threshold: float | None = None) -> dict:
    """The parity report: per-batch results, the criterion, the threshold and whether it passed."""
    threshold = spec.threshold if threshold is None else threshold
    if spec.criterion == "max_abs":
        worst = max(r["max_abs"] for r in results.values())
        passed = worst <= threshold
    else:
        worst = min(r["top1"] for r in results.values())
        passed = worst >= threshold
    return {"precision": spec.name, "criterion": spec.criterion, "threshold": threshold, "worst": worst,
            "passed": bool(passed), "batches": results}


def session_for(model: bytes | str | Path, threads: int | None = None, **options):
    """An onnxruntime CPU session of ``model`` (serialized bytes or a path) as every socketedge check opens one:
    ``threads`` intra-op threads (None: onnxruntime's default), ``options`` set on its SessionOptions, and the
    transformers of ``ORT_DISABLED_OPTIMIZERS`` off."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    for key, value in options.items():
        setattr(opts, key, value)
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=ORT_DISABLED_OPTIMIZERS)


def table(report: dict, title: str = "parity: PyTorch fp32 vs onnxruntime"):
    """The report as a rich table."""
    from rich.table import Table

    verdict = "[green]passed[/]" if report["passed"] else "[bold red]FAILED[/]"
    op = "≤" if report["criterion"] == "max_abs" else "≥"
    t = Table(title=f"{title} ({report['precision']}): {verdict}",
              caption=f"criterion: {report['criterion']} {op} {report['threshold']:g}"
                      + (f" · frames: {report['data']}" if report.get("data") else ""))
    for col in ("batch", "frames", "max |Δp|", "mean |Δp|", "top-1 agreement"):
        t.add_column(col, justify="right")
    for r in report["batches"].values():
        t.add_row(str(r["batch"]), str(r["frames"]), f"{r['max_abs']:.3g}", f"{r['mean_abs']:.3g}",
                  f"{100 * r['top1']:.2f}%")
    return t
