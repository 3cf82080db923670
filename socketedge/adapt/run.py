"""The adaptation loop behind `socketedge adapt`: small on purpose — the maths lives in losses.py,
pseudo_labels.py, bn_stats.py and diagnostics.py."""

from __future__ import annotations

import copy
import json
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from socketedge.adapt import distributed, losses
from socketedge.adapt.bn_stats import (BatchStatsRecorder, batch_stats, feature_map_layers, reestimate_running_stats,
                                      running_stats_frozen, set_adapt_mode, source_stats)
from socketedge.adapt.config import AdaptConfig
from socketedge.adapt.diagnostics import gap_stats, joint_projection, linear_cka
from socketedge.adapt.pseudo_labels import mix_features, pseudo_labels
from socketedge.data.cache import (TRAIN_RESIZE_RATIO, FrameStorage, apply_crop, batches, crop_flip_indices,
                                   decode_set, decode_sets, frame_rows, native_batches, split_indices)
from socketedge.data.depth_units import DepthUnits, check_depth_values, resolve_units
from socketedge.data.folders import ImageSet, labeled_folder, paired_folder, target_folder
from socketedge.data.preprocess import DEFAULT_DEPTH_RANGE, DEFAULT_DEPTH_SCALE, Preprocess, preprocessing_for
from socketedge.errors import ConfigError, DataError, ModelError, SocketEdgeError
from socketedge.models.bundle import is_bundle, save_bundle, write_json_atomic
from socketedge.models.checkpoint import load_source, torch_load_tensors
from socketedge.models.ensemble import Ensemble, Member, check_same_classes, check_same_modality
from socketedge.models.predict import accuracy, predict
from socketedge.models.source_model import batchnorm_layers
from socketedge.models.train import set_lr
from socketedge.utils.device import resolve_device
from socketedge.utils.progress import console, format_terms, make_progress
from socketedge.utils.atomic import atomic_path
from socketedge.utils.outputs import check_output_dir
from socketedge.utils.signals import StopFlag

RESUME_FILE = "resume.pt"
# Ctrl-C and SIGTERM (`docker stop`, `systemctl stop`, `kill`; under torchrun what the launcher sends every worker
# when the job is interrupted) ask for a stop at the next step boundary; ranks agree on that step before stopping
# (DistContext.any). The run then writes a checkpoint and exits 130, and --resume continues bit-identically.
STOP_MESSAGE = "[yellow]stopping: finishing this step and writing a checkpoint (Ctrl-C again to abort)[/]"
TERMS = ("loss", "ent", "div", "pl", "ti", "bn")
BALANCE_LIMIT = 10.0  # a λ-weighted term whose encoder gradient exceeds this × that of ent − div gets a warning
LAMBDA_OPTION = {"pl": ("λ_pl", "--lambda-pl"), "ti": ("λ_TI", "--lambda-ti"), "bn": ("λ_d", "--lambda-d")}


class AdaptInterrupted(SocketEdgeError):
    """Ctrl-C during adaptation: a checkpoint was written and `--resume` continues from it."""


@dataclass
class AdaptResult:
    bundle: Path
    metrics: dict
    ensemble: Ensemble = field(repr=False)
    is_main: bool = True  # False on the other ranks of a data-parallel run: they write nothing


def _step_seed(seed: int, epoch: int, step: int, stream: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + step * 101 + stream) % (2**63)


def _features_and_probs(members: list[Member], frames: torch.Tensor | ImageSet, device: torch.device,
                        batch_size: int = 128, preprocess: list[nn.Module] | None = None,
                        ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-member features (K × (N, D_k)) and per-member probabilities (K, N, C), eval mode, on the CPU."""
    out = predict(members, frames, device, batch_size, features=True, preprocess=preprocess)
    return out.features, out.member_probs


class Adapter:
    """State of one adaptation run; `run()` executes (or resumes) it."""

    # Evaluation state: the folders read at native resolution (scanned once), and the end-of-epoch target pass
    # kept for the next epoch's pseudo-labels.
    _target_images: ImageSet | None = None
    _labels_images: ImageSet | None = None
    _next_pass: tuple[list[torch.Tensor], torch.Tensor] | None = None

    def __init__(self, cfg: AdaptConfig, on_step: Callable[[int], None] | None = None):
        self.cfg = cfg.effective()
        self.on_step = on_step
        self.last_terms: dict[str, float] = {}  # the global values of the last step's terms
        self.grad_balance: dict | None = None  # encoder gradient norm of each term at the first step
        self.bn_statistics: dict = {}  # which running statistics were kept at the start / end, and why
        # Under torchrun: join the process group (data-parallel run, see adapt/distributed.py); else a no-op.
        self.dist, self.device = distributed.setup(resolve_device(self.cfg.device))
        self._comm_device = self.device if self.dist.backend == "nccl" else None  # NCCL gathers device tensors
        try:
            with self.dist.guard():
                self._load_inputs()
                self._distribute()
        except BaseException:
            self.dist.close()
            raise

    # ------------------------------------------------------------------ set-up
    def _load_inputs(self) -> None:
        cfg = self.cfg
        out = Path(cfg.out)
        if self.dist.is_main:  # only rank 0 writes --out (and reads the checkpoint): other nodes may not see it
            check_output_dir(out, "--out")
            if is_bundle(out) and not (out / RESUME_FILE).exists():
                raise ConfigError(f"{out} already holds a finished bundle; choose another --out or delete it")
            if cfg.resume and not (out / RESUME_FILE).exists():
                raise ConfigError(f"--resume: no checkpoint {out / RESUME_FILE}; run without --resume to start")
            if not cfg.resume and (out / RESUME_FILE).exists():
                raise ConfigError(f"{out} holds an interrupted run; add --resume to continue it or choose another "
                                  "--out")

        torch.manual_seed(cfg.seed)
        sources = [load_source(p) for p in cfg.sources]
        self.class_names = check_same_classes(sources, [str(p) for p in cfg.sources])
        # the direction comes from the checkpoints (rgb → depth, nir → rgb, …): nothing assumes an RGB source
        self.source_modality = check_same_modality(sources, [str(p) for p in cfg.sources])
        target = target_folder(cfg.target, cfg.modality, self.class_names, source=self.source_modality)
        self.modality = target.modality
        self.target_units = DepthUnits()
        if self.modality == "depth":
            self.target_units = resolve_units(cfg.target, cfg.depth_scale, None, "--depth-scale", "--depth-range",
                                              DepthUnits(DEFAULT_DEPTH_SCALE, None, "default"))
        clip = cfg.depth_range or self.target_units.valid
        preps = [preprocessing_for(s.meta, self.modality, self.target_units.scale, clip) for s in sources]
        self.members = [Member(s, p).to(self.device) for s, p in zip(sources, preps)]
        for m in self.members:
            m.classifier.requires_grad_(False)  # g_k stays the source's: only f_k and ζ adapt
        self.src_stats = ([source_stats(m.encoder, str(p)) for m, p in zip(self.members, cfg.sources)]
                          if cfg.lambda_d > 0 else None)
        # The layers the BN term counts: every BatchNorm (paper form) or the feature-map ones (scaled form);
        # src_stats keeps only those, the recorders' target statistics are picked the same way every step.
        self.bn_layers: list[list[int]] = []
        if self.src_stats is not None:
            for m, p, (means, _) in zip(self.members, cfg.sources, self.src_stats):
                layers = feature_map_layers(m.encoder) if cfg.term_scale == "scaled" else list(range(len(means)))
                if not layers:
                    raise ModelError(f"{p} has no BatchNorm layer over feature maps (only BatchNorm1d), so the "
                                     "scaled BN term has nothing to match; use --lambda-d 0 or --term-scale paper")
                self.bn_layers.append(layers)
            self.src_stats = [([means[i] for i in idx], [variances[i] for i in idx])
                              for (means, variances), idx in zip(self.src_stats, self.bn_layers)]

        self.size = max(p.input_size for p in preps)
        self.load = round(self.size * TRAIN_RESIZE_RATIO)
        show = cfg.show_progress
        # in memory while the run's decoded sets fit the budget, else the disk cache (same frames either way)
        self.storage = FrameStorage.of(cfg.memory_budget, cfg.cache_dir)
        self.target = decode_set(target, self.load, "decoding target", show, self.storage)
        if len(self.target) < 2:
            raise DataError(f"target folder {cfg.target} has {len(self.target)} image; adaptation needs a batch")
        if self.modality == "depth":
            # the unit check's band: the sensor's recorded valid range, else the default clip range widened to
            # the user's --depth-range (a deliberately tight clip, e.g. 0.5-1.5 m for hands in front of a room,
            # must not read as a unit mistake)
            spec = preps[0]
            band = self.target_units.valid or (min(spec.depth_near, DEFAULT_DEPTH_RANGE[0]),
                                               max(spec.depth_far, DEFAULT_DEPTH_RANGE[1]))
            check_depth_values(self.target.raw, spec.depth_scale, band,
                               f"target {cfg.target}", "pass --depth-scale (or record it in the session/import)")
        self.labels_set = None
        if cfg.labels is not None:
            self.labels_set = decode_set(labeled_folder(cfg.labels, self.modality, self.class_names), self.size,
                                         "decoding labels", show, self.storage)
        self._load_ti(show)

        k = len(self.members)
        self.zeta_logits = nn.Parameter(torch.zeros(k, device=self.device))
        groups = []
        for m in self.members:
            groups.append({"params": m.model.backbone_parameters(), "lr0": cfg.lr * cfg.backbone_lr_mult})
            groups.append({"params": m.model.head_parameters(), "lr0": cfg.lr})
        groups.append({"params": [self.zeta_logits], "lr0": cfg.lr, "weight_decay": 0.0})
        groups = [g for g in groups if g["params"]]
        for g in groups:
            g["lr"] = g["lr0"]
        self.optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                         nesterov=True)
        n = len(self.target)
        self.drop_last = n >= cfg.batch_size
        self.steps_per_epoch = len(batches(n, cfg.batch_size, drop_last=self.drop_last))
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.amp = cfg.amp and self.device.type == "cuda"
        world = self.dist.world
        smallest = min(cfg.batch_size, n, len(self.ti_tgt) if self.psi else n)
        if smallest < world:
            raise ConfigError(f"a global batch of {smallest} images cannot be split over {world} processes (every "
                              "rank needs at least one image per step); raise --batch-size (it is the global "
                              "batch) or start fewer processes")

    def _distribute(self) -> None:
        """Data-parallel set-up: BatchNorm on global batch statistics, then DDP around each trainable encoder.
        With one process the encoders are used as they are."""
        self.encoders: list[nn.Module] = [m.encoder for m in self.members]
        self._restore_bn = []
        self._mean = self.dist.batch_mean if self.dist.active else None
        if not self.dist.active:
            return
        from torch.nn.parallel import DistributedDataParallel

        self._restore_bn = [distributed.sync_batchnorm(m.model.encoder, self.dist, self.device)
                            for m in self.members]
        ids = [self.device.index] if self.device.type == "cuda" else None
        # Buffers are synced once at start, not before every forward: global-batch BatchNorm keeps them
        # identical on every rank.
        self.encoders = [DistributedDataParallel(m.encoder, device_ids=ids, forward_sync_buffers=False)
                         for m in self.members]

    def _no_sync(self, skip: bool) -> ExitStack:
        """Skip DDP's gradient all-reduce for this forward/backward (the TI backward that follows syncs both)."""
        stack = ExitStack()
        if skip and self.dist.active:
            for enc in self.encoders:
                stack.enter_context(enc.no_sync())
        return stack

    def _load_ti(self, show: bool) -> None:
        cfg = self.cfg
        self.ti_src = self.ti_tgt = self.hold_src = self.hold_tgt = None
        self.psi: list[torch.Tensor] = []
        held = None
        if cfg.ti is None and cfg.gap_pairs is None:
            return
        self._ti_preprocessing(cfg.ti if cfg.ti is not None else cfg.gap_pairs)
        if cfg.ti is not None:
            pairs = self._ti_pairs(cfg.ti)
            n = len(pairs)
            hold = int(round(n * cfg.ti_holdout)) if n >= 5 and cfg.gap_pairs is None else 0
            hold_idx, train_idx = split_indices(n, [hold / n, 1 - hold / n], cfg.seed)
            if len(train_idx) < 2 and cfg.lambda_ti > 0:
                raise DataError(f"TI folder {cfg.ti} has {n} pairs; socket needs at least a couple for training")
            specs = [(pairs.a.subset(train_idx), self.size, f"decoding TI {self.source_modality}"),
                     (pairs.b.subset(train_idx), self.size, f"decoding TI {self.modality}")]
            crop_specs = []
            if cfg.ti_augment and cfg.lambda_ti > 0:  # the training term's crops: decoded as the target is
                crop_specs = [(pairs.a.subset(train_idx), self.load, f"decoding TI {self.source_modality} (crops)"),
                              (pairs.b.subset(train_idx), self.load, f"decoding TI {self.modality} (crops)")]
            held = (pairs.a.subset(hold_idx), pairs.b.subset(hold_idx)) if len(hold_idx) else None
        else:
            specs = []
        if cfg.gap_pairs is not None:
            gap = self._ti_pairs(cfg.gap_pairs)
            held = (gap.a, gap.b)
        if held is not None:
            specs += [(held[0], self.size, f"decoding held-out {self.source_modality}"),
                      (held[1], self.size, "decoding held-out target")]
        # every pair set decoded before unreadable files are reported (all of them, in one line)
        sets = decode_sets(specs, show, self.storage)
        self.ti_crops = None  # (source side, target side) at the crop-loading size, or None: no augmentation
        if cfg.ti is not None:
            self.ti_src, self.ti_tgt = sets[:2]
            self._check_ti_depth(self.ti_src, self.ti_tgt, cfg.ti)
            if crop_specs:  # the same files as sets[:2], so an unreadable one was reported once, above
                self.ti_crops = tuple(decode_sets(crop_specs, show, self.storage))
        if held is not None:
            self.hold_src, self.hold_tgt = sets[-2:]
            if cfg.ti is None:
                self._check_ti_depth(self.hold_src, self.hold_tgt, cfg.gap_pairs)
        # The frozen source encoders: ψ_k = f_k^src(x_TI^source) once, and the "before" side of the diagnostics.
        self.frozen = [copy.deepcopy(m).eval().requires_grad_(False) for m in self.members]
        if cfg.lambda_ti > 0 and self.ti_src is not None:
            # Each rank encodes its share of the TI source-modality images once (read a chunk at a time when
            # they are in the disk cache); the shares are all-gathered.
            n, part = len(self.ti_src), self.dist.rows(len(self.ti_src))
            psi = _features_and_probs(self.frozen, frame_rows(self.ti_src.raw, part), self.device,
                                      preprocess=self.src_pre)[0]
            self.psi = [self.dist.gather_rows(f, n, device=self._comm_device).to(self.device) for f in psi]
            # the scaled TI term's unit: how far apart the source's own TI features lie
            self.psi_spread = [losses.psi_spread(p) for p in self.psi]
        self.ti_src = None  # only ψ needed the TI source-modality images

    def _ti_preprocessing(self, root: Path) -> None:
        """The TI pairs' preprocessing: each side as the members preprocess that modality, but depth in the TI
        set's own units (scale, valid range: recorded beside the pairs, given, or else the target's)."""
        cfg = self.cfg
        self.ti_units = DepthUnits()
        if "depth" in (self.source_modality, self.modality):
            fallback = (DepthUnits(self.target_units.scale, None, f"the target's ({self.target_units.origin})")
                        if self.modality == "depth" else DepthUnits(DEFAULT_DEPTH_SCALE, None, "default"))
            self.ti_units = resolve_units(root, cfg.ti_depth_scale, cfg.ti_depth_range, "--ti-depth-scale",
                                          "--ti-depth-range", fallback)
        units = {"depth_scale": self.ti_units.scale, "depth_valid": self.ti_units.valid}

        def side(m: Member, modality: str) -> Preprocess:
            spec = m.preprocess.spec.model_copy(update={"modality": modality})
            spec = spec.model_copy(update=units) if modality == "depth" else spec
            return Preprocess(spec).to(self.device)

        self.src_pre = [side(m, self.source_modality) for m in self.members]  # ψ: the source modality's side
        self.ti_pre = [side(m, self.modality) for m in self.members]  # the encoders being adapted: the target's

    def _check_ti_depth(self, src, tgt, root: Path) -> None:
        """Catch TI depth read in the wrong units (an error, not a silently mis-scaled TI term)."""
        for frames, modality, pre in ((src, self.source_modality, self.src_pre), (tgt, self.modality, self.ti_pre)):
            if modality == "depth":
                spec = pre[0].spec
                check_depth_values(frames.raw, spec.depth_scale, spec.depth_valid or (spec.depth_near, spec.depth_far),
                                   f"TI depth {root} (units: {self.ti_units.origin})",
                                   "record them beside the pairs (session.json / import.json) or pass --ti-depth-scale")

    def _ti_pairs(self, root: Path):
        pairs = paired_folder(root, self.source_modality, self.modality)
        if pairs.a.class_names:
            overlap = sorted(set(pairs.a.class_names) & set(self.class_names))
            if overlap:
                raise DataError(f"TI folder {root} holds task classes {overlap}; task-irrelevant pairs must "
                                "come from classes the source models do not predict")
        return pairs

    # ------------------------------------------------------------------ pieces of a step
    def zeta(self) -> torch.Tensor:
        """ζ on the simplex (softmax of free logits), used identically by the output, TI and BN terms."""
        return self.zeta_logits.softmax(0)

    def target_images(self) -> ImageSet:
        """The target frames as files, read at native resolution (as `eval` and the exported graph see them)."""
        if self._target_images is None:
            images = target_folder(self.cfg.target, self.cfg.modality, self.class_names)
            if [it.key for it in images.items] != self.target.keys:
                raise DataError(f"target folder {self.cfg.target} changed while adapting; leave it as it is "
                                "until the run ends")
            self._target_images = images
        return self._target_images

    def _target_pass(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Features and per-member probabilities of every target frame, read at native resolution as `eval`
        reads them. Each rank encodes its share; the shares are all-gathered, so every rank holds all of them."""
        n = len(self.target)
        share = self.target_images().subset(range(n)[self.dist.rows(n)])
        feats, probs = _features_and_probs(self.members, share, self.device)
        feats = [self.dist.gather_rows(f, n, device=self._comm_device) for f in feats]
        return feats, self.dist.gather_rows(probs, n, dim=1, device=self._comm_device)

    def compute_pseudo_labels(self) -> tuple[torch.Tensor, float | None]:
        # The previous epoch's end-of-epoch pass when it made one (same weights, nothing trained since), else
        # a pass now. Centroids come from the features of all target images, and rank 0's labels are
        # broadcast so every rank trains on exactly the same ones.
        feats, probs = self._next_pass or self._target_pass()
        self._next_pass = None
        zeta = self.zeta().detach().cpu()
        mixed = mix_features(feats, zeta, per_source_scale=True)
        labels = self.dist.broadcast_object(pseudo_labels(mixed, losses.mix(zeta, probs)))
        acc = None
        if self.target.labels is not None:
            acc = accuracy(labels, self.target.labels)
        return labels, acc

    def target_terms(self, raw: torch.Tensor, pseudo: torch.Tensor | None) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        recorders = self.recorders
        logits = []
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            for k, m in enumerate(self.members):
                if recorders:
                    with recorders[k].recording():
                        feats = self.encoders[k](m.preprocess(raw, sized=True))
                else:
                    feats = self.encoders[k](m.preprocess(raw, sized=True))
                logits.append(m.classifier(feats))
        zeta = self.zeta()
        probs = losses.mix(zeta, torch.stack([lg.float().softmax(1) for lg in logits]))
        mean = self._mean  # None: this batch; data-parallel: the global batch of all ranks
        terms = {"ent": losses.entropy(probs, mean), "div": losses.diversity(probs, mean)}
        loss = terms["ent"] - terms["div"]
        if cfg.lambda_pl > 0 and pseudo is not None:
            terms["pl"] = losses.pseudo_label_ce(probs, pseudo.to(self.device), mean)
            loss = loss + cfg.lambda_pl * terms["pl"]
        if recorders:
            tgt_mean, tgt_var = batch_stats(recorders, self.dist.moments if self.dist.active else None)
            pick = lambda per_source: [[layers[i] for i in idx]  # noqa: E731
                                       for layers, idx in zip(per_source, self.bn_layers)]
            src_mean, src_var = [s[0] for s in self.src_stats], [s[1] for s in self.src_stats]
            if cfg.term_scale == "scaled":
                # running_var is PyTorch's unbiased estimate: compare it with the unbiased batch variance
                world = self.dist.world if self.dist.active else 1
                counts = pick([[max(c * world, 2) for c in r.counts] for r in recorders])
                tgt_var = [[v * (c / (c - 1)) for v, c in zip(vs, cs)] for vs, cs in zip(pick(tgt_var), counts)]
                terms["bn"] = losses.bn_stat_distance_scaled(src_mean, src_var, pick(tgt_mean), tgt_var, zeta)
            else:
                terms["bn"] = losses.bn_stat_distance(src_mean, src_var, pick(tgt_mean), pick(tgt_var), zeta)
            loss = loss + cfg.lambda_d * terms["bn"]
        terms["loss"] = loss
        return terms

    def ti_term(self, idx: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """TI term of a global batch of pair indices (each rank encodes its slice of it).

        With ``generator`` (a training step) and --ti-augment: both images of each pair get the same random crop
        and flip, drawn for the global batch as the target frames' are, and ψ of the source-side crop comes from
        the frozen source encoder (eval mode, no gradient) now. A few hundred fixed pairs are otherwise learnt by
        heart: on NTU depth (Lite0, seed 0, the TI term alone for 240 steps) the fixed pairs' distance fell
        2.2 → 0.5 while target accuracy peaked at 48.8% and sank to 44.0%; with paired crops it rose to 57.6%.
        Without: the fixed frames against ψ computed once."""
        crops = self.ti_crops if generator is not None else None
        part = self.dist.shard(torch.arange(len(idx)))
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)
        if crops is not None:
            rows, cols = crop_flip_indices(len(idx), self.load, self.size, generator)  # drawn for the global batch
            idx, rows, cols = idx[part], rows[part], cols[part]
            raw = apply_crop(crops[1].raw[idx], rows, cols).to(self.device)
            src = apply_crop(crops[0].raw[idx], rows, cols).to(self.device)
            with amp, torch.no_grad():
                psi = [fz.encoder(self.src_pre[k](src, sized=True)).float() for k, fz in enumerate(self.frozen)]
        else:
            idx = idx[part]
            raw = self.ti_tgt.raw[idx].to(self.device)
            psi = [p[idx.to(self.device)] for p in self.psi]
        # batch statistics as in every train-mode pass, but the running statistics stay the target's
        with amp, running_stats_frozen([m.encoder for m in self.members]):
            feats = [self.encoders[k](self.ti_pre[k](raw, sized=True)).float() for k in range(len(self.members))]
        if self.cfg.term_scale == "scaled":
            return losses.ti_distance_scaled(psi, feats, self.zeta(), self.psi_spread, self._mean)
        return losses.ti_distance(psi, feats, self.zeta(), self._mean)

    @contextmanager
    def _ti_backbone_rate(self):
        """While the TI term's backward runs, its gradient on the backbone parameters is scaled by
        ti_backbone_lr_mult / backbone_lr_mult, so that the TI term trains the backbone at its own rate while
        ent, div, pl and bn keep backbone_lr_mult (one optimiser; momentum and weight decay as for every term).
        Tensor hooks act before the gradient is accumulated, so DDP's reducer averages the scaled sum."""
        cfg = self.cfg
        # a frozen trunk (backbone_lr_mult 0: its rate is 0) stays frozen
        factor = cfg.ti_backbone_lr_mult / cfg.backbone_lr_mult if cfg.backbone_lr_mult > 0 else 1.0
        hooks = []
        if factor != 1.0:
            hooks = [p.register_hook(lambda g: g * factor) for m in self.members
                     for p in m.model.backbone_parameters() if p.requires_grad]
        try:
            yield
        finally:
            for h in hooks:
                h.remove()

    def _grad_norm(self, value: torch.Tensor) -> float:
        params = [p for m in self.members for p in m.encoder.parameters() if p.requires_grad]
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))

    def _balance_target(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        """Encoder gradient norms of ent − div and of each λ-weighted target term (first step only)."""
        cfg = self.cfg
        out = {"ent_div": self._grad_norm(terms["ent"] - terms["div"])}
        if "pl" in terms:
            out["pl"] = self._grad_norm(cfg.lambda_pl * terms["pl"])
        if "bn" in terms:
            out["bn"] = self._grad_norm(cfg.lambda_d * terms["bn"])
        return out

    def _report_balance(self, norms: dict[str, float]) -> None:
        base = max(norms["ent_div"], 1e-12)
        self.grad_balance = {"grad_norm": norms, "ratio_to_ent_div": {k: v / base for k, v in norms.items()
                                                                      if k != "ent_div"},
                             "term_scale": self.cfg.term_scale}
        for term, ratio in self.grad_balance["ratio_to_ent_div"].items():
            if ratio > BALANCE_LIMIT and self.dist.is_main:
                name, option = LAMBDA_OPTION[term]
                hint = " or use --term-scale scaled" if self.cfg.term_scale != "scaled" else ""
                console.print(f"[yellow]warning: {name} too large for this network: the {term} term's encoder "
                              f"gradient is {ratio:.0f}× that of ent−div at the first step; lower "
                              f"{option}{hint}[/]", highlight=False)

    @torch.no_grad()
    def recalibrate_bn(self, batch_size: int = 64) -> None:
        """Running statistics := their plain average over every target frame, read at native resolution through
        each member's Preprocess as evaluation and the exported graph read them (no augmentation). Data-parallel:
        every rank walks the same batches and forwards its rows of each, BatchNorm combines the global batch, so
        the statistics equal the one-process ones (a batch with fewer frames than ranks is left out on all)."""
        world = self.dist.world if self.dist.active else 1
        for m in self.members:  # frames decoded a chunk at a time, once per member: memory stays one chunk
            reestimate_running_stats(m.encoder, (m.preprocess(raw[self.dist.shard(torch.arange(len(raw)))]
                                                              .to(self.device))
                                                 for _, raw in native_batches(self.target_images(), batch_size)
                                                 if len(raw) >= world))

    @torch.no_grad()
    def ti_alignment(self, max_pairs: int = 1024) -> float:
        """ζ-weighted linear CKA between ψ_k and member k's eval-mode features of the same TI pairs' target
        images (at most ``max_pairs`` of them, evenly spaced): how much the target features are related to the
        source's, whatever their scale. Every rank computes it on the whole set (the same number)."""
        n = len(self.ti_tgt)
        rows = torch.linspace(0, n - 1, min(n, max_pairs)).round().long().unique()
        frames = self.ti_tgt.raw[rows] if len(rows) < n else self.ti_tgt.raw
        feats = _features_and_probs(self.members, frames, self.device, preprocess=self.ti_pre)[0]
        zeta = self.zeta().detach().cpu()
        return sum(float(z) * linear_cka(p[rows.to(p.device)].cpu(), f) for z, p, f in zip(zeta, self.psi, feats))

    def settle_bn_statistics(self, when: str) -> None:
        """Before the first epoch (``when`` = "start") and after the last ("end"): which BatchNorm running
        statistics the model goes on with (--recalibrate-bn).

        Re-estimating them on the target frames is what makes another modality usable when the source's
        statistics crush it: on NTU depth with Lite0 the RGB statistics put every crop on nearly one feature
        vector (spread 0.5% of ψ's; CKA with ψ on the TI pairs 0.06, re-estimated 0.25; 19.6% → 36.0% accuracy
        with no training). Elsewhere the source's statistics keep the target nearer the source: RoadScene
        thermal with road-scene RGB statistics has CKA 0.58 with ψ, re-estimated 0.40, and re-estimation alone
        widens the held-out gap by 6%. The TI pairs are the evidence that decides (auto): keep whichever
        statistics give the higher linear CKA between ψ and the target features of the TI pairs — scale-free, so
        a collapsed feature set that merely sits near ψ's mean (a small distance) does not win. Without TI
        pairs: re-estimate."""
        mode = self.cfg.recalibrate_bn
        if mode == "never":
            return
        if mode == "always" or not self.psi:
            self.recalibrate_bn()
            rule = "always" if mode == "always" else "no TI pairs"
            self.bn_statistics[when] = {"chosen": "re-estimated", "rule": rule}
            return
        layers = [bn for m in self.members for _, bn in batchnorm_layers(m.encoder) if bn.track_running_stats]
        kept = [(bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone()) for bn in layers]
        current = self.ti_alignment()
        self.recalibrate_bn()
        estimated = self.ti_alignment()
        use_estimated = bool(self.dist.broadcast_object(estimated > current))
        if not use_estimated:
            with torch.no_grad():
                for bn, (mean, var, count) in zip(layers, kept):
                    bn.running_mean.copy_(mean)
                    bn.running_var.copy_(var)
                    bn.num_batches_tracked.copy_(count)
        name = "source" if when == "start" else "moving average"
        self.bn_statistics[when] = {"chosen": "re-estimated" if use_estimated else name, "rule": "auto",
                                    "ti_cka": {name: current, "re-estimated": estimated}}
        if self.dist.is_main and self.cfg.show_progress:
            console.print(f"BatchNorm statistics at the {when}: {self.bn_statistics[when]['chosen']} (CKA with ψ on "
                          f"the TI pairs: {name} {current:.3f}, re-estimated on the target {estimated:.3f})",
                          highlight=False)

    # ------------------------------------------------------------------ checkpoints
    def _state(self, epoch: int, step: int, pseudo, running, history, gap_before) -> dict:
        return {"epoch": epoch, "step": step,
                "members": [m.model.state_dict() for m in self.members],
                "zeta_logits": self.zeta_logits.detach().cpu(), "optimizer": self.optimizer.state_dict(),
                "pseudo": pseudo, "running": running, "history": json.dumps(history),
                "gap_before": json.dumps(gap_before), "config": self.cfg.model_dump_json(),
                "grad_balance": json.dumps(self.grad_balance), "bn_statistics": json.dumps(self.bn_statistics)}

    def save_checkpoint(self, *args) -> Path:
        out = Path(self.cfg.out)
        if not self.dist.is_main:  # every rank holds the same state; rank 0 writes it
            return out / RESUME_FILE
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / RESUME_FILE) as tmp:
            torch.save(self._state(*args), tmp)
        return out / RESUME_FILE

    def load_checkpoint(self) -> dict:
        path = Path(self.cfg.out) / RESUME_FILE
        state = None
        if self.dist.is_main:
            state = torch_load_tensors(path, "resume checkpoint", "it is written only by `socketedge adapt`: "
                                       f"delete it and run without --resume to start {self.cfg.out} afresh")
        state = self.dist.broadcast_object(state)  # rank 0's copy: other nodes need not see --out
        saved = AdaptConfig.model_validate_json(state["config"])
        changed = [k for k in ("sources", "target", "ti", "method", "lambda_ti", "lambda_d", "lambda_pl",
                               "term_scale", "epochs", "batch_size", "lr", "backbone_lr_mult",
                               "ti_backbone_lr_mult", "ti_augment", "seed")
                   if getattr(saved, k) != getattr(self.cfg, k)]
        if changed:
            raise ConfigError(f"--resume with different settings than the interrupted run: {', '.join(changed)}")
        for m, sd in zip(self.members, state["members"]):
            m.model.load_state_dict(sd)
        with torch.no_grad():
            self.zeta_logits.copy_(state["zeta_logits"].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.grad_balance = json.loads(state.get("grad_balance", "null"))
        self.bn_statistics = json.loads(state.get("bn_statistics", "{}"))
        return state

    # ------------------------------------------------------------------ diagnostics and metrics
    def gap(self, adapted: bool) -> dict | None:
        if self.hold_src is None or not self.dist.is_main:  # reported (and computed) by rank 0 only
            return None
        src = _features_and_probs(self.frozen, self.hold_src.raw, self.device, preprocess=self.src_pre)[0]
        tgt = _features_and_probs(self.members if adapted else self.frozen, self.hold_tgt.raw, self.device,
                                  preprocess=self.ti_pre)[0]
        zeta = self.zeta().detach().cpu()
        out = {"n_pairs": len(self.hold_src), "mixed": gap_stats(mix_features(src, zeta), mix_features(tgt, zeta)),
               "per_source": [gap_stats(r, t) for r, t in zip(src, tgt)]}
        # "rgb" names the source-modality side (the key predates other source modalities; plots read it)
        pr, pt = joint_projection(mix_features(src, zeta), mix_features(tgt, zeta))
        out["projection"] = {"rgb": pr.tolist(), "target": pt.tolist()}
        return out

    def accuracy_on(self, images: ImageSet, probs: torch.Tensor | None = None) -> float:
        """Accuracy of the current ensemble on labeled ``images`` at native resolution — `eval`'s number for
        the bundle these weights become. ``probs``: per-member probabilities of ``images`` already computed."""
        if probs is None:
            probs = predict(self.members, images, self.device, 128).member_probs
        labels = torch.tensor([it.label for it in images.items], dtype=torch.long)
        return accuracy(losses.mix(self.zeta().detach().cpu(), probs).argmax(1), labels)

    # ------------------------------------------------------------------ the loop
    def run(self) -> AdaptResult:
        try:
            with self.dist.guard():
                return self._run()
        finally:
            self.dist.close()

    def _run(self) -> AdaptResult:
        cfg = self.cfg
        main = self.dist.is_main
        start_epoch, start_step, pseudo, running, history = 0, 0, None, None, []
        gap_before = None
        if cfg.resume:
            state = self.load_checkpoint()
            start_epoch, start_step, pseudo = state["epoch"], state["step"], state["pseudo"]
            running, history = state["running"], json.loads(state["history"])
            gap_before = json.loads(state["gap_before"])
            if main:
                console.print(f"resuming {cfg.out} at epoch {start_epoch + 1}, step {start_step}")
        else:
            gap_before = self.gap(adapted=False)
            self.settle_bn_statistics("start")
        self.recorders = [BatchStatsRecorder(m.encoder) for m in self.members] if cfg.lambda_d > 0 else []
        n = len(self.target)
        done = (start_epoch, start_step)  # the last step boundary reached: where a checkpoint resumes
        try:
            with (StopFlag(also_sigterm=True, message=STOP_MESSAGE if main else None) as stop,
                  make_progress(disable=not (cfg.show_progress and main)) as progress):
                task = progress.add_task(f"adapt ({cfg.method})", total=self.total_steps,
                                         completed=start_epoch * self.steps_per_epoch + start_step, terms="")
                for epoch in range(start_epoch, cfg.epochs):
                    pl_acc = None
                    if pseudo is None and cfg.lambda_pl > 0:
                        pseudo, pl_acc = self.compute_pseudo_labels()
                    if running is None:
                        running = {t: 0.0 for t in TERMS} | {"steps": 0, "pl_accuracy": pl_acc}
                    order = batches(n, cfg.batch_size, torch.Generator().manual_seed(_step_seed(cfg.seed, epoch, 0)),
                                    self.drop_last)
                    ti_order = (batches(len(self.ti_tgt), cfg.batch_size,
                                        torch.Generator().manual_seed(_step_seed(cfg.seed, epoch, 0, 1)),
                                        len(self.ti_tgt) >= cfg.batch_size) if self.psi else [])
                    for m in self.members:
                        m.train()
                        set_adapt_mode(m.encoder)  # dropout / stochastic depth off, BatchNorm on batch statistics
                    for step in range(start_step, self.steps_per_epoch):
                        g = torch.Generator().manual_seed(_step_seed(cfg.seed, epoch, step, 2))
                        torch.manual_seed(_step_seed(cfg.seed, epoch, step, 3))  # dropout, if a model has any
                        idx = order[step]
                        rows, cols = crop_flip_indices(len(idx), self.load, self.size, g)
                        if self.dist.active:  # this rank's slice of the global batch and of its augmentation
                            part = self.dist.shard(torch.arange(len(idx)))
                            idx, rows, cols = idx[part], rows[part], cols[part]
                        raw = apply_crop(self.target.raw[idx], rows, cols).to(self.device, non_blocking=True)
                        set_lr(self.optimizer, (epoch * self.steps_per_epoch + step) / self.total_steps)
                        self.optimizer.zero_grad(set_to_none=True)
                        # gradient balance of the terms at the very first step (one process: autograd.grad
                        # beside DDP's reducer is not worth the risk; a 1-process run of the same set-up shows it)
                        balance = (self.grad_balance is None and epoch == 0 and step == 0
                                   and not self.dist.active)
                        with self._no_sync(skip=bool(self.psi)):  # DDP reduces once, after the TI backward
                            terms = self.target_terms(raw, pseudo[idx] if pseudo is not None else None)
                            norms = self._balance_target(terms) if balance else {}
                            terms["loss"].backward()  # target terms first, TI separately: lower peak memory
                        if self.psi:
                            g_ti = torch.Generator().manual_seed(_step_seed(cfg.seed, epoch, step, 4))
                            terms["ti"] = self.ti_term(ti_order[step % len(ti_order)], g_ti)
                            if balance:
                                norms["ti"] = self._grad_norm(cfg.lambda_ti * terms["ti"])
                            with self._ti_backbone_rate():
                                (cfg.lambda_ti * terms["ti"]).backward()
                            terms["loss"] = terms["loss"].detach() + cfg.lambda_ti * terms["ti"].detach()
                        if balance:
                            self._report_balance(norms)
                        self.dist.average_grad_([self.zeta_logits])  # ζ is outside DDP: same mean gradient
                        self.optimizer.step()
                        values = {k: float(v.detach()) for k, v in terms.items()}
                        self.last_terms = values
                        for k, v in values.items():
                            running[k] += v
                        running["steps"] += 1
                        progress.update(task, advance=1, terms=format_terms(
                            {"ep": epoch + 1, **{k: values[k] for k in TERMS if k in values}}))
                        done = (epoch, step + 1)
                        if self.on_step is not None:
                            self.on_step(epoch * self.steps_per_epoch + step + 1)
                        if self.dist.any(stop.requested, self._comm_device):  # all ranks stop after one step
                            raise KeyboardInterrupt
                    # end of epoch: metrics, then a checkpoint so a crash loses at most one epoch
                    if epoch == cfg.epochs - 1:
                        self.settle_bn_statistics("end")
                    record = self._epoch_record(epoch, running)
                    history.append(record)
                    if main:
                        progress.console.print(format_terms({k: v for k, v in record.items()
                                                             if isinstance(v, (int, float))}), highlight=False)
                    pseudo, running, start_step = None, None, 0
                    done = (epoch + 1, 0)
                    self.save_checkpoint(epoch + 1, 0, None, None, history, gap_before)
        except KeyboardInterrupt:
            e, s = done
            if s == 0:
                pseudo, running = None, None
            path = self.save_checkpoint(e, s, pseudo, running, history, gap_before)
            raise AdaptInterrupted(f"interrupted at epoch {e + 1} step {s}; checkpoint {path} written — "
                                   f"continue with the same command plus --resume") from None
        finally:
            for r in self.recorders:
                r.remove()
        return self._finish(history, gap_before)

    def _epoch_record(self, epoch: int, running: dict) -> dict:
        steps = max(running["steps"], 1)
        record = {"epoch": epoch + 1, **{k: running[k] / steps for k in TERMS if running[k]},
                  "zeta": self.zeta().detach().cpu().tolist(),
                  "lr": self.optimizer.param_groups[-1]["lr"]}
        if running.get("pl_accuracy") is not None:
            record["pl_accuracy"] = running["pl_accuracy"]
        # Evaluation as `eval` does it: native-resolution frames through each member's Preprocess. The labeled
        # target's pass is every rank's (each encodes a share) and the next epoch's pseudo-labels reuse it.
        if self.target.labels is not None:
            feats, probs = self._target_pass()
            if self.cfg.lambda_pl > 0 and epoch + 1 < self.cfg.epochs:
                self._next_pass = (feats, probs)
            if self.dist.is_main:  # rank 0 reports
                record["target_accuracy"] = self.accuracy_on(self._target_images, probs)
        if self.labels_set is not None and self.dist.is_main:
            if self._labels_images is None:
                self._labels_images = labeled_folder(self.cfg.labels, self.modality, self.class_names)
            record["accuracy"] = self.accuracy_on(self._labels_images)
        return record

    def _finish(self, history: list[dict], gap_before: dict | None) -> AdaptResult:
        cfg = self.cfg
        for restore in self._restore_bn:
            restore()  # plain BatchNorm again (same tensors) for the bundle
        for m in self.members:
            m.eval()
        if not self.dist.is_main:  # rank 0 writes the bundle, metrics and plots
            ensemble = Ensemble(list(self.members), self.zeta().detach().cpu())
            return AdaptResult(Path(cfg.out), {"history": history, "zeta": ensemble.zeta.tolist()}, ensemble,
                               is_main=False)
        ensemble = Ensemble([m.cpu() for m in self.members], self.zeta().detach().cpu())
        ensemble.to(self.device)
        metrics: dict = {"method": cfg.method, "history": history, "zeta": ensemble.zeta.tolist()}
        if self.grad_balance is not None:
            metrics["grad_balance"] = self.grad_balance
        if self.bn_statistics:
            metrics["bn_statistics"] = self.bn_statistics
        gap_after = self.gap(adapted=True)
        if gap_before is not None and gap_after is not None:
            metrics["gap"] = {"before": gap_before, "after": gap_after}
        if history:
            metrics["final"] = {k: v for k, v in history[-1].items() if k != "epoch"}
        out = Path(cfg.out)
        config = cfg.model_dump(mode="json", exclude={"show_progress", "resume"})
        config |= {"target": str(Path(cfg.target).resolve()), "modality": self.modality,
                   "source_modality": self.source_modality,
                   "depth_units": {"target": _units_json(self.target_units),
                                   "ti": _units_json(getattr(self, "ti_units", DepthUnits()))},
                   "ti": str(Path(cfg.ti).resolve()) if cfg.ti else None,
                   "gap_pairs": str(Path(cfg.gap_pairs).resolve()) if cfg.gap_pairs else None}
        summary = {k: v for k, v in metrics.get("final", {}).items() if not isinstance(v, list)}
        ensemble.cpu()
        save_bundle(out, ensemble, cfg.method, config, summary, [str(Path(p).resolve()) for p in cfg.sources])
        write_json_atomic(out / "metrics.json", metrics)
        from socketedge.adapt.plots import plot_gap, plot_history

        plot_history(history, out / "metrics.png", cfg.method, self.grad_balance)
        if "gap" in metrics:
            plot_gap(metrics["gap"], out / "gap.png")
        (out / RESUME_FILE).unlink(missing_ok=True)
        return AdaptResult(out, metrics, ensemble)


def _units_json(u: DepthUnits) -> dict | None:
    return None if u.scale is None else {"depth_scale": u.scale, "valid_range": u.valid, "from": u.origin}


def adapt(cfg: AdaptConfig, on_step: Callable[[int], None] | None = None) -> AdaptResult:
    """Run SOCKET (or SHOT / DECISION) and write the adapted bundle to ``cfg.out``."""
    return Adapter(cfg, on_step).run()
