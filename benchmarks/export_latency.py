"""CPU latency and agreement with fp32 of the exported graph per precision, for several architectures, measured side
by side in one run: batch 1, real Kinect depth frames (uint16 mm) in, probabilities out.

Per architecture (one source at --size px, fused with its depth preprocessing as `socketedge export` does):

- fp32:                  the fused float graph (BatchNorm folded into the convolutions before export)
- fp16:                  onnxruntime's float16 conversion (export/precision.to_fp16): how well-conditioned the
                         classifier is — a graph whose top-1 moves under 10-bit mantissas cannot survive 8 bits
- int8:                  QDQ, symmetric int8 activations — TensorRT's form, the `--precision int8` default
- int8-uint8:            QDQ, asymmetric uint8 activations, the network body up to the pooling, the linear head
                         float32 (precision.Int8Builder's float_head, the default) — onnxruntime's form
                         (`--int8-activations uint8`), MinMax ranges; weights 7- or 8-bit (--weight-bits: by
                         default what `--precision auto` picks on this CPU, precision.reduce_range_for)
- int8-uint8-head-int8:  int8-uint8 with the linear head quantized too (the earlier rounds' graph)
- int8-uint8-mixed:      the same with its most sensitive convolutions kept float32 (per-layer sensitivity on
                         the calibration frames, as few as reach --min-agreement / --max-prob-error there:
                         precision.mixed_int8, what `--precision auto` tries); absent when no mix of at most half
                         the layers does
- int8-uint8-stem-float: int8-uint8 with each source's stem convolution (the one reading the preprocessed depth)
                         kept float32 too (precision.stem_nodes; `--int8-float-stem`): the depth enters at full
                         precision, not in 8-bit steps (~2 cm over 0.3–5 m)
- int8-uint8-percentile: int8-uint8 with onnxruntime's Percentile (99.999) calibration instead of MinMax
- int8-uint8-qat:        int8-uint8-stem-float of the model first fine-tuned through the int8 rounding to reproduce
                         fp32 (export/qat.py, `socketedge export --int8-finetune`, --qat-steps) on the deployment
                         frames — `--precision auto`'s int8-uint8-qat candidate
- PyTorch eager fp32, for reference; with --sources N > 1 also N separate onnxruntime sessions mixed in numpy

The classifiers really classify NTU depth (``trained_member``): whole frames leave a single-frame gesture
classifier near chance (the hand is a small part of the frame; README, real RGB-D), so, as in real_rgbd.py, each
frame is cut to the 220 px box around the hand found in the depth map. Each source: random-init torchvision
weights (EfficientNet-Lite0: its packaged ImageNet weights), the whole network trained with cross-entropy on the
200 P1–P5 crops (--train-epochs 20 at --train-px 224: ~15 min per architecture on one core; at 112 px, the first
rounds' recipe, a third of that), then at --size px the BatchNorm statistics re-estimated and the head (bottleneck +
classifier) retrained on them; cached in --work. (--train-epochs 0, head only on random features, gives
near-uniform classifiers whose top-1 flips under any noise: the first round's numbers. --train-noise-mm adds
sensor-noise augmentation to the whole-network training, ``depth_noise``; at 4 mm it made neither classifier more
stable under noise nor int8 closer to fp32: README.)

The held-out subjects P6–P10 play the deployment camera: their 500 crops are split once (seeded) into 300 on which
agreement is measured and 200 unlabeled "deployment frames" — what `socketedge export --calib` gets in the field —
of which 64 calibrate int8 (and choose the mixed precision) and all 200 feed the fine-tuning; no frame is both
calibrated / trained on and checked. The fp32 classifier's own stability is measured too: its top-1 agreement with
itself when Gaussian noise of 1 and 3 mm (the Kinect's own depth noise is mm to cm) is added to the raw depth of
the agreement frames — a classifier whose decisions move under sensor noise cannot keep them through 8-bit
rounding either. Latency on a whole 480×640 frame (the graph resizes either).
Every variant timed round-robin (run i of each, then run i + 1, …), median of --runs, at each --threads count. The kernel census (the graph as onnxruntime's
optimizer saves it) and the per-node profile (onnxruntime's profiler) show which convolutions run as int8
kernels and where the time goes.

    python benchmarks/export_latency.py                          # resnet18, mobilenet_v3_large, efficientnet_lite0
    python benchmarks/export_latency.py --archs resnet18 --sources 2 --threads 2 --runs 100
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ntu_kinect_gesture"


def median_ms(variants: dict, runs: int, warmup: int = 5) -> dict[str, float]:
    """Median milliseconds per variant, timed round-robin (run i of every variant, then run i + 1, …) so a
    change in machine load during the benchmark hits every variant alike and the ratios stay comparable."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def ntu_frames(root: Path, subjects: set[int], limit: int, seed: int, crop_cache: Path | None = None
               ) -> tuple[list[np.ndarray], np.ndarray]:
    """Up to ``limit`` depth frames (uint16 mm, 480×640) of ``subjects``, a seeded even pick, and their labels;
    with ``crop_cache`` (a json file of the boxes, made on first use) each cut to real_rgbd.py's 220 px box around
    the hand found in the depth map."""
    import json

    from socketedge.data.imageio import read_image

    paths = sorted(p for p in (root / "depth").rglob("*.png")
                   if int(re.match(r"P(\d+)_", p.name).group(1)) in subjects)
    if not paths:
        raise SystemExit(f"no depth frames under {root / 'depth'}; see {root / 'PROVENANCE.md'}")
    pick = np.random.default_rng(seed).permutation(len(paths))[:limit]
    chosen = [paths[i] for i in sorted(pick)]
    labels = np.array([int(p.parent.name[1:]) - 1 for p in chosen])
    frames = [read_image(p, "depth") for p in chosen]
    if crop_cache is not None:
        from real_rgbd import CROP, hand_box

        saved = json.loads(crop_cache.read_text()) if crop_cache.is_file() else {}
        boxes = saved.get("boxes", {}) if saved.get("params") == CROP else {}
        for p, d in zip(chosen, frames):
            key = f"{p.parent.name}/{p.stem}"
            if key not in boxes:
                boxes[key] = hand_box(d, CROP["side"], CROP["band_mm"], CROP["near_percentile"], CROP["core_mm"],
                                      CROP["min_area"], tuple(CROP["shift"]))
        crop_cache.parent.mkdir(parents=True, exist_ok=True)
        crop_cache.write_text(json.dumps({"params": CROP, "boxes": boxes}))
        frames = [np.ascontiguousarray(d[y0:y1, x0:x1]) for d, p in zip(frames, chosen)
                  for x0, y0, x1, y1 in [boxes[f"{p.parent.name}/{p.stem}"]]]
    return frames, labels


def logit_error(probs: np.ndarray, ref: np.ndarray) -> float:
    """‖Δ logits‖ / ‖spread of the fp32 logits over the frames‖, logits recovered from the probabilities up to a
    per-frame constant: how far a variant moves the classifier's input compared with how much frames differ
    (0: identical; near 1: as if the frame were replaced by another)."""
    def centred(p):
        lp = np.log(np.maximum(p.astype(np.float64), 1e-30))
        return lp - lp.mean(1, keepdims=True)

    a, b = centred(probs), centred(ref)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b - b.mean(0)))


def saturation_check(fused_graphs: dict, frames, calib, threads: int) -> dict[str, tuple[float, float]]:
    """The uint8 form with full 8-bit weights run by the int8 kernels and simulated in float (graph optimizations
    off: every Q/DQ computed in float32, no kernel saturates), next to the 7-bit (reduce_range) form: what the
    u8×s8 kernels of a CPU without VNNI cost in accuracy, apart from quantization itself."""
    import onnxruntime as ort

    from socketedge.export import precision
    from socketedge.export.parity import session_for

    eight_bit = precision.to_int8(fused_graphs["fp32"], calib, "uint8", reduce_range=False)
    seven_bit = precision.to_int8(fused_graphs["fp32"], calib, "uint8", reduce_range=True)

    def run(model, optimize: bool) -> np.ndarray:
        level = {} if optimize else {"graph_optimization_level": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
        s = session_for(model.SerializeToString(), threads, **level)
        return np.concatenate([s.run(["probs"], {"frames": f[None, None]})[0] for f in frames])

    ref = run(fused_graphs["fp32"], True)
    out = {}
    for name, model, optimize in (("uint8, 8-bit weights, int8 kernels", eight_bit, True),
                                  ("uint8, 8-bit weights, simulated in float", eight_bit, False),
                                  ("uint8, 7-bit weights, int8 kernels", seven_bit, True)):
        p = run(model, optimize)
        out[name] = (float((p.argmax(1) == ref.argmax(1)).mean()), logit_error(p, ref))
    return out


def _raw_batches(frames, n: int = 16):
    import torch

    return [torch.from_numpy(np.stack(frames[i:i + n]).astype(np.int32))[:, None] for i in range(0, len(frames), n)]


def depth_noise(raw, sigma_mm: float, gen):
    """``raw`` (N, 1, H, W) integer mm depth with Gaussian noise added, as a time-of-flight / structured-light
    sensor's: per frame a standard deviation drawn uniformly from [0, ``sigma_mm``] mm at 1 m, growing with the
    square of the distance; rounded back to whole mm; invalid (0) pixels stay 0."""
    import torch

    z = raw.float()
    sd = torch.rand(len(raw), 1, 1, 1, generator=gen) * sigma_mm * (z / 1000.0) ** 2
    noisy = (z + sd * torch.randn(z.shape, generator=gen)).round().clamp_min(1)
    return torch.where(raw > 0, noisy, torch.zeros_like(noisy)).to(raw.dtype)


def _train_small(arch, pretrained, classes, frames, labels, model, train_size, epochs, progress, seed,
                 noise_mm: float = 0.0):
    """Whole-network cross-entropy training at ``train_size`` px; the weights are copied into ``model``. With
    ``noise_mm`` > 0 each batch's raw depth gets sensor noise first (``depth_noise``)."""
    import torch
    import torch.nn.functional as F

    from socketedge.data.preprocess import preprocessing_for
    from socketedge.models.ensemble import Member
    from socketedge.models.source_model import new_source_model

    small = new_source_model(arch, classes, pretrained=pretrained, input_size=train_size)
    small_member = Member(small, preprocessing_for(small.meta, "depth"))
    batches = _raw_batches(frames)
    raw_all = torch.cat(batches)
    with torch.no_grad():  # without noise the preprocessed frames are the same every epoch
        x_all = None if noise_mm > 0 else torch.cat([small_member.preprocess(b) for b in batches])
    y_all = torch.from_numpy(np.asarray(labels)).long()
    opt = torch.optim.AdamW(small.parameters(), lr=1e-3 if pretrained else 2e-3, weight_decay=1e-4)
    steps_per_epoch = (len(frames) + 31) // 32
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=opt.param_groups[0]["lr"], total_steps=epochs * steps_per_epoch)
    shift = max(1, train_size // 16)
    task = progress.add_task(f"train {arch} at {train_size} px", total=epochs, terms="") if progress else None
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        small.train()
        order = torch.randperm(len(frames), generator=gen)
        correct = 0
        for i in range(0, len(frames), 32):
            idx = order[i:i + 32]
            if noise_mm > 0:
                with torch.no_grad():
                    xb = small_member.preprocess(depth_noise(raw_all[idx], noise_mm, gen))
            else:
                xb = x_all[idx]
            dx, dy = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=gen))
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            out = small(xb)
            loss = F.cross_entropy(out, y_all[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            correct += int((out.argmax(1) == y_all[idx]).sum())
        if task is not None:
            progress.update(task, advance=1, terms=f"loss {loss.item():.2f}, train acc {correct / len(frames):.2f}")
    if task is not None:
        progress.remove_task(task)
    model.load_state_dict(small.state_dict())


def trained_member(arch: str, size: int, frames, labels, classes, work: Path, train_size: int, epochs: int,
                   progress=None, seed: int = 0, noise_mm: float = 0.0):
    """One source trained to classify NTU depth frames (``frames``: the hand crops, ``labels``), cached in ``work``
    so reruns skip the training.

    Recipe: torchvision random init (EfficientNet-Lite0: its packaged ImageNet weights); with ``epochs`` > 0 the
    whole network first trained with cross-entropy at ``train_size`` px (AdamW, one-cycle, random translation;
    about 5 min per architecture for 20 epochs at 112 px on one core); then at ``size`` px the BatchNorm
    statistics re-estimated on the frames and the head (bottleneck Linear + BatchNorm1d and the classifier)
    trained with label-smoothed cross-entropy on the frozen backbone's features (full batch, Adam, 300 steps).
    Returns the member (eval mode) and its recipe with the training accuracy."""
    import torch
    import torch.nn.functional as F

    from socketedge.adapt.bn_stats import reestimate_running_stats
    from socketedge.data.preprocess import preprocessing_for
    from socketedge.models.ensemble import Member
    from socketedge.models.source_model import new_source_model

    pretrained = arch.startswith("efficientnet_lite")
    recipe = {"arch": arch, "init": "ImageNet (packaged)" if pretrained else "random", "train_px": train_size,
              "px": size, "epochs": epochs, "frames": len(frames), "seed": seed, "input": "hand crops",
              "head": "bottleneck+classifier 300 steps"}
    if noise_mm and epochs:
        recipe["train_noise_mm"] = noise_mm
    key = "-".join(f"{v}" for v in recipe.values()).replace(" ", "").replace("(", "").replace(")", "")
    path = work / f"{key}.pt"
    model = new_source_model(arch, classes, pretrained=pretrained, input_size=size)
    member = Member(model, preprocessing_for(model.meta, "depth"))
    if path.is_file():
        blob = torch.load(path, weights_only=False)
        model.load_state_dict(blob["state"])
        return member.eval(), blob["recipe"]
    torch.manual_seed(seed)
    if epochs:
        _train_small(arch, pretrained, classes, frames, labels, model, train_size, epochs, progress, seed,
                     recipe.get("train_noise_mm", 0.0))
    raw = _raw_batches(frames)
    reestimate_running_stats(model.encoder, [member.preprocess(b) for b in raw])
    member.eval()
    backbone, bottleneck = model.encoder[0], model.encoder[1]
    with torch.no_grad():
        feats = torch.cat([backbone(member.preprocess(b)) for b in raw])
    y_all = torch.from_numpy(np.asarray(labels)).long()
    head = [*bottleneck.parameters(), *model.classifier.parameters()]
    head_opt = torch.optim.Adam(head, lr=3e-3, weight_decay=1e-4)
    bottleneck.train()
    for _ in range(300):  # full batch: the bottleneck's BatchNorm statistics settle on the frames' own
        loss = F.cross_entropy(model.classifier(bottleneck(feats)), y_all, label_smoothing=0.1)
        head_opt.zero_grad()
        loss.backward()
        head_opt.step()
    member.eval()
    with torch.no_grad():
        recipe["train_accuracy"] = float((model.classifier(bottleneck(feats)).argmax(1) == y_all).float().mean())
    work.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "recipe": recipe}, path)
    return member.eval(), recipe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="resnet18,mobilenet_v3_large,efficientnet_lite0")
    ap.add_argument("--size", type=int, default=224, help="model input size (px)")
    ap.add_argument("--sources", type=int, default=1, help="sources per model (>1: also N separate sessions)")
    ap.add_argument("--runs", type=int, default=50, help="timed runs per variant (median reported), >= 50")
    ap.add_argument("--threads", default="2,1", help="comma-separated intra-op thread counts to time with")
    ap.add_argument("--fit-frames", type=int, default=200, help="P1–P5 hand crops the classifiers are trained on")
    ap.add_argument("--calib-frames", type=int, default=64, help="of the P6–P10 deployment frames, the ones int8 "
                    "is calibrated (and mixed precision is chosen) on")
    ap.add_argument("--agree-frames", type=int, default=300, help="held-out P6–P10 hand crops for agreement (the "
                    "other P6–P10 crops are the deployment frames)")
    ap.add_argument("--qat-steps", type=int, default=200, help="fine-tuning steps of int8-uint8-qat (0 skips it)")
    ap.add_argument("--weight-bits", choices=("auto", "7", "8"), default="auto", help="the uint8 variants' weight "
                    "range: auto as --precision auto on this CPU (8-bit where u8×s8 does not saturate), 7 or 8")
    ap.add_argument("--no-mixed", action="store_true", help="skip the mixed-precision search (per-layer "
                    "sensitivity: minutes per architecture)")
    ap.add_argument("--train-epochs", type=int, default=20, help="whole-network training epochs at --train-px "
                    "before the head is trained at --size (0: head only; see trained_member)")
    ap.add_argument("--train-px", type=int, default=224, help="whole-network training size (224: the deployed "
                    "size, ~15 min per architecture on one core; the first rounds trained at 112 and re-estimated "
                    "BatchNorm at --size)")
    ap.add_argument("--train-noise-mm", type=float, default=0.0, help="sensor-noise augmentation of the "
                    "whole-network training: Gaussian depth noise of up to this many mm at 1 m, growing with the "
                    "square of the distance (depth_noise; 0: none). 4 was tried: it made neither classifier "
                    "more stable under noise nor int8 closer to fp32 (README)")
    ap.add_argument("--min-agreement", type=float, default=0.99, help="auto's and mixed precision's tolerance")
    ap.add_argument("--max-prob-error", type=float, default=0.02, help="mean total-variation distance bound")
    ap.add_argument("--work", type=Path, default=Path("runs/export_latency"), help="trained classifiers and "
                    "per-layer sensitivities are cached here")
    ap.add_argument("--data", type=Path, default=DATA, help="the NTU Kinect gesture folder")
    ap.add_argument("--report", action="store_true", help="print the tables of the last run (saved in --work "
                    "after each architecture) without measuring again")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-node profile")
    ap.add_argument("--saturation-frames", type=int, default=100, help="held-out frames for the u8×s8 "
                    "saturation check (8-bit weights in the int8 kernels vs the same graph simulated in float); "
                    "0 skips it")
    args = ap.parse_args()
    if args.runs < 50:
        ap.error("--runs must be at least 50")

    import json

    import onnxruntime as ort
    import torch
    from rich.console import Console
    from rich.table import Table

    from socketedge.export import onnx_export, precision, qat
    from socketedge.export.auto import Measured, choose, prob_errors
    from socketedge.export.parity import session_for
    from socketedge.fuse import fuse
    from socketedge.models.ensemble import Ensemble
    from socketedge.runtime.ort_profile import cpu_features, kernel_census, op_times_ms
    from socketedge.utils.progress import make_progress

    console = Console(width=220)
    thread_counts = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(max(thread_counts))
    archs = args.archs.split(",")
    classes = [f"G{i}" for i in range(1, 11)]
    boxes = args.work / "hand_boxes.json"
    fit, fit_labels = ntu_frames(args.data, {1, 2, 3, 4, 5}, args.fit_frames, seed=0, crop_cache=boxes)
    target, target_labels = ntu_frames(args.data, {6, 7, 8, 9, 10}, 10 ** 6, seed=1, crop_cache=boxes)
    split = np.random.default_rng(1).permutation(len(target))
    held, held_labels = [target[i] for i in split[: args.agree_frames]], target_labels[split[: args.agree_frames]]
    deploy = [target[i] for i in sorted(split[args.agree_frames:])]
    if not deploy:
        ap.error(f"--agree-frames {args.agree_frames} leaves no P6–P10 deployment frames to calibrate on")
    calib = deploy[:: max(1, len(deploy) // args.calib_frames)][: args.calib_frames]
    x = ntu_frames(args.data, {6, 7, 8, 9, 10}, 1, seed=1)[0][0][None, None]  # a whole 480×640 frame: latency
    cpu = cpu_features()
    rr = precision.reduce_range_for(cpu) if args.weight_bits == "auto" else args.weight_bits == "7"
    console.print(f"CPU {cpu['model']} ({cpu['machine']}; int8-relevant: {', '.join(cpu['int8_features']) or 'none'})"
                  f", onnxruntime {ort.__version__}, torch {torch.__version__}; {len(fit)} training hand crops "
                  f"(P1–P5); uint8 variants with {7 if rr else 8}-bit weights; of P6–P10, {len(deploy)} "
                  f"deployment crops ({len(calib)} calibrate int8, all fine-tune) "
                  f"and {len(held)} held-out crops for agreement; "
                  f"latency on a whole {x.shape[3]}×{x.shape[2]} frame")

    def session(model, threads):
        return session_for(model.SerializeToString(), threads, inter_op_num_threads=1)

    def fp32_graph(ensemble: Ensemble):
        fused, folds = fuse(ensemble)
        return onnx_export.graph_of(fused), folds, fused

    import pickle

    saved = args.work / "results.pkl"
    results: dict[str, dict] = {}
    with make_progress(transient=True, disable=args.report) as progress:
        task = progress.add_task("benchmark", total=len(archs), terms="")
        for arch in archs if not args.report else []:
            progress.update(task, terms=f"{arch}: classifier")
            torch.manual_seed(0)
            made = [trained_member(arch, args.size, fit, fit_labels, classes, args.work, args.train_px,
                                   args.train_epochs, progress, seed=k, noise_mm=args.train_noise_mm)
                    for k in range(args.sources)]
            members, recipe = [m for m, _ in made], made[0][1]
            ensemble = Ensemble(members).eval()
            g, folds, fused_model = fp32_graph(ensemble)
            progress.update(task, terms=f"{arch}: quantizing")
            graphs = {"fp32": g, "fp16": precision.to_fp16(type(g).FromString(g.SerializeToString())),
                      "int8": precision.to_int8(g, calib)}
            mixed_info = None
            graphs["int8-uint8-head-int8"] = precision.to_int8(g, calib, "uint8", reduce_range=rr, float_head=False)
            with precision.Int8Builder(g, calib, "uint8", reduce_range=rr) as builder:
                graphs["int8-uint8"] = builder.build()
                graphs["int8-uint8-stem-float"] = builder.build(builder.stem_nodes)
                ref_calib = precision.run_probs(g, calib, max(thread_counts))
                cache = args.work / f"sensitivity-{arch}-{args.size}-{len(calib)}-{hash_recipe(recipe)}.json"
                ranking = json.loads(cache.read_text()) if cache.is_file() else None
                if not args.no_mixed:
                    progress.update(task, terms=f"{arch}: mixed precision (per-layer sensitivity)")
                    mixed, mixed_info = precision.mixed_int8(
                        builder, calib, ref_calib, min_agreement=args.min_agreement,
                        max_prob_error=args.max_prob_error, threads=max(thread_counts), ranking=ranking,
                        progress=progress)
                    if ranking is None:
                        args.work.mkdir(parents=True, exist_ok=True)
                        cache.write_text(json.dumps(mixed_info["ranking"]))
                    if mixed is not None:
                        graphs["int8-uint8-mixed"] = mixed
            with precision.Int8Builder(g, calib, "uint8", reduce_range=rr, calibration="percentile") as builder:
                graphs["int8-uint8-percentile"] = builder.build()
            qat_record = None
            if args.qat_steps:
                progress.update(task, terms=f"{arch}: int8 fine-tuning on {len(deploy)} deployment frames")
                tuned = qat.finetune(fused_model, deploy, "uint8", steps=args.qat_steps, reduce_range=rr,
                                     float_stem=True, progress=progress)
                qat_record = tuned.record
                graphs["int8-uint8-qat"] = precision.to_int8(onnx_export.graph_of(tuned.model), calib, "uint8",
                                                             reduce_range=rr, float_stem=True)
            progress.update(task, terms=f"{arch}: agreement on {len(held)} held-out frames")
            probs = {v: precision.run_probs(m, held, max(thread_counts)) for v, m in graphs.items()}
            ref = probs["fp32"]
            info = {"errors": {v: prob_errors(p, ref) for v, p in probs.items()},
                    "logit_err": {v: logit_error(p, ref) for v, p in probs.items()},
                    "accuracy": float((ref.argmax(1) == held_labels).mean()), "recipe": recipe,
                    "confident": float((ref.max(1) >= 0.5).mean()), "mean_top_p": float(ref.max(1).mean()),
                    "near_ties": precision.near_ties(ref, args.max_prob_error),
                    "classes_predicted": len(set(ref.argmax(1).tolist())), "mixed": mixed_info,
                    "census": {v: kernel_census(m.SerializeToString()) for v, m in graphs.items()},
                    "bn_folded": sum(f.batchnorm_folded for f in folds), "bn_left": sum(f.batchnorm_left for f in folds),
                    "stem_bn": stem_bn_gains(members[0].model), "qat": qat_record,
                    "noise": noise_stability(g, held, max(thread_counts)),
                    "times": {}, "profile": {}}
            xt = torch.from_numpy(x)
            for threads in thread_counts:
                progress.update(task, terms=f"{arch}: timing, {threads} thread(s)")
                torch.set_num_threads(threads)
                variants = {}
                for v, m in graphs.items():
                    s = session(m, threads)
                    variants[v] = lambda s=s: s.run(["probs"], {"frames": x})[0]
                if args.sources > 1:
                    separate = [session(fp32_graph(Ensemble([m]))[0], threads) for m in members]
                    z = ensemble.zeta.detach().numpy()

                    def run_separate(separate=separate, z=z):
                        return sum(zk * s.run(["probs"], {"frames": x})[0] for zk, s in zip(z, separate))

                    variants[f"{args.sources} separate sessions fp32"] = run_separate

                def run_eager():
                    with torch.inference_mode():
                        return ensemble(xt)

                variants["PyTorch eager fp32"] = run_eager
                info["times"][threads] = median_ms(variants, args.runs)
            if not args.no_profile:
                progress.update(task, terms=f"{arch}: per-node profile")
                info["profile"] = {v: op_times_ms(m.SerializeToString(), x, threads=1, runs=10)
                                   for v, m in graphs.items() if v in ("fp32", "int8", "int8-uint8")}
            if args.saturation_frames:
                progress.update(task, terms=f"{arch}: u8×s8 saturation check")
                info["saturation"] = saturation_check(graphs, held[: args.saturation_frames], calib,
                                                      max(thread_counts))
            results[arch] = info
            args.work.mkdir(parents=True, exist_ok=True)
            saved.write_bytes(pickle.dumps({"results": results, "calib": len(calib), "x": x.shape}))
            progress.advance(task)
    if args.report:
        blob = pickle.loads(saved.read_bytes())
        results = blob["results"]
        calib, x = [None] * blob["calib"], np.zeros(blob["x"], np.uint16)
        thread_counts = list(next(iter(results.values()))["times"])

    for arch, info in results.items():
        r = info["recipe"]
        noise = f" with up to {r['train_noise_mm']:g} mm of depth noise" if r.get("train_noise_mm") else ""
        how = (f"whole network trained {r['epochs']} epochs at {r['train_px']} px{noise}, then " if r["epochs"] else "")
        console.print(f"[bold]{arch}[/] classifier: {r['init']} weights, BatchNorm re-estimated on the {r['frames']} "
                      f"P1–P5 depth hand crops at {r['px']} px, {how}head (bottleneck + classifier) trained on them "
                      f"(training accuracy {100 * r['train_accuracy']:.1f}%); fp32 on the held-out P6–P10 crops: "
                      f"{100 * info['accuracy']:.1f}% top-1 (chance 10%), {info['classes_predicted']} classes "
                      f"predicted, mean top probability {info['mean_top_p']:.2f}, {100 * info['confident']:.0f}% of "
                      "frames with top p ≥ 0.5")
        if "near_ties" in info:  # a graph within auto's TV bound can still flip these: 1 % of the frames is the budget
            console.print(f"  {info['near_ties']} of {len(held)} frames are fp32 near-ties (top-2 probability margin "
                          f"< {args.max_prob_error:g}, the TV bound); --min-agreement {args.min_agreement:g} allows "
                          f"{int(len(held) * (1 - args.min_agreement) + 1e-9)} flips")
    for threads in thread_counts:
        table = Table(title=f"batch 1, {x.shape[2]}×{x.shape[3]} uint16 depth frame → 10 classes, {args.size} px, "
                            f"{args.sources} source(s); {threads} intra-op thread(s); median of {args.runs} "
                            "interleaved runs; agreement on the held-out crops")
        for col in ("architecture", "variant", "median ms", "fp32 / variant", "top-1 vs fp32", "… where fp32 p ≥ .5",
                    "mean TV", "max |Δp|", "logit err / spread", "kernels (onnxruntime CPU, optimized graph)"):
            table.add_column(col, justify="left" if col in ("architecture", "variant") or col.startswith("kernels")
                             else "right")
        for arch, info in results.items():
            times = info["times"][threads]
            base = times["fp32"]
            for name, ms in times.items():
                e = info["errors"].get(name)
                census = info["census"].get(name)
                table.add_row(arch, name, f"{ms:.2f}", f"{base / ms:.2f}×",
                              f"{100 * e['agreement']:.2f}%" if e else "-",
                              f"{100 * e['confident_agreement']:.2f}%" if e and e["confident_agreement"] is not None
                              else "-",
                              f"{e['mean_tv']:.4f}" if e else "-", f"{e['max_abs']:.3f}" if e else "-",
                              f"{info['logit_err'][name]:.3f}" if name in info["logit_err"] else "-",
                              census.summary() if census is not None else "-")
            table.add_section()
        console.print(table)
        for arch, info in results.items():
            measured = [Measured(v, "fp32" if v == "fp32" else "int8", None, median_ms=info["times"][threads][v],
                                 **info["errors"][v]) for v in info["errors"]]
            chosen, reason = choose(measured, args.min_agreement, args.max_prob_error)
            console.print(f"  {arch}, {threads} thread(s): --precision auto's rule (≥ {100 * args.min_agreement:g}% "
                          f"agreement, mean TV ≤ {args.max_prob_error:g}, on these held-out frames) keeps "
                          f"{chosen.name} — {reason}")
    for arch, info in results.items():
        console.print(f"[bold]{arch}[/]: BatchNorm folded {info['bn_folded']}, left {info['bn_left']}")
        if "stem_bn" in info:
            b = info["stem_bn"]
            console.print(f"  stem BatchNorm on depth: {b['dead']} of {b['channels']} channels with running variance "
                          f"< 1e-4 (smallest {b['min_var']:.2g}); |γ|/√(var+ε) median {b['median_gain']:.1f}, "
                          f"largest {b['max_gain']:.1f}")
        for sigma, (agree, tv) in info.get("noise", {}).items():
            console.print(f"  fp32 under {sigma} mm Gaussian depth noise: top-1 agreement with itself "
                          f"{100 * agree:.2f}%, mean TV {tv:.4f}")
        ft = info.get("qat")
        if ft:
            b, a = ft["before"], ft["after"]
            console.print(f"  int8 fine-tuning: {ft['steps']} steps on {ft['train_frames']} deployment frames, step "
                          f"{ft['kept_step']} kept; simulated int8 on the {ft['held_aside_frames']} held aside: "
                          f"agreement {100 * b['agreement']:.1f}% → {100 * a['agreement']:.1f}%, mean TV "
                          f"{b['mean_tv']:.4f} → {a['mean_tv']:.4f}")
        m = info["mixed"]
        if m is not None:
            steps = "; ".join(f"{s['float_nodes']} float: {100 * s['agreement']:.1f}% / TV {s['mean_tv']:.4f}"
                              for s in m["steps"])
            top = ", ".join(f"{n} {e:.3g}" for n, e in m["ranking"][:5])
            console.print(f"  mixed precision on the {len(calib)} calibration frames ({m['compute_nodes']} compute "
                          f"layers; most sensitive, log-prob MSE alone: {top}): {steps}"
                          + ("" if "float_nodes" in m else " — no mix within the bound"))
        for v, census in info["census"].items():
            ops = ", ".join(f"{k} {n}" for k, n in census.ops.items()
                            if k in ("Conv", "FusedConv", "QLinearConv", "QuantizeLinear", "DequantizeLinear",
                                     "QLinearAdd", "Add", "Relu", "Clip", "HardSigmoid", "QLinearMul", "Mul",
                                     "Transpose", "QGemm", "Gemm"))
            console.print(f"  optimized graph {v}: {ops}")
        for name, (agree, err) in info.get("saturation", {}).items():
            console.print(f"  {name}: top-1 vs fp32 {100 * agree:.2f}%, logit err / spread {err:.3f}")
        for v, prof in info["profile"].items():
            total = sum(prof.values())
            top = ", ".join(f"{op} {ms:.1f}" for op, ms in list(prof.items())[:6])
            console.print(f"  profile {v} (1 thread, ms/run): total {total:.1f} — {top}")


def noise_stability(graph, frames, threads: int, sigmas=(1, 3), seed: int = 0) -> dict[int, tuple[float, float]]:
    """fp32's top-1 agreement and mean total-variation distance with itself when Gaussian noise of ``sigmas`` mm
    is added to the valid pixels of the raw depth frames: how far below the sensor's own noise its decisions lie."""
    from socketedge.export import precision

    rng = np.random.default_rng(seed)
    ref = precision.run_probs(graph, frames, threads)
    out = {}
    for s in sigmas:
        noisy = [np.where(f > 0, np.clip(f + rng.normal(0, s, f.shape), 1, 65535), 0).round().astype(np.uint16)
                 for f in frames]
        errors = precision.prob_errors(precision.run_probs(graph, noisy, threads), ref)
        out[s] = (errors["agreement"], errors["mean_tv"])
    return out


def stem_bn_gains(model) -> dict:
    """The first BatchNorm's statistics (the stem's, as re-estimated on depth): how many channels see (almost) no
    variance — an ImageNet colour-opponent filter cancels on the replicated grey depth — and the gain
    |γ|/√(var + ε) folding puts into the convolution, which amplifies any rounding of that filter."""
    import torch

    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    var = bn.running_var.detach().double()
    gain = (bn.weight.detach().double() / torch.sqrt(var + bn.eps)).abs()
    return {"channels": len(var), "dead": int((var < 1e-4).sum()), "min_var": float(var.min()),
            "median_gain": float(gain.median()), "max_gain": float(gain.max())}


def hash_recipe(recipe: dict) -> str:
    import hashlib
    import json

    return hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]


if __name__ == "__main__":
    main()
