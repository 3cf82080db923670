"""`train-source`: a source classifier (RGB, or the modality given, recorded in the checkpoint) with the
SHOT/SOCKET source recipe.

Label-smoothing (0.1) cross-entropy; SGD nesterov momentum 0.9, weight decay 1e-3; learning rate 1e-2 for
bottleneck + classifier and 1e-3 for a pretrained backbone (1e-2 from scratch) with polynomial decay
(1 + 10 p)^-0.75 over the whole run; resize + random crop + flip; 90/10 train/validation split.

Small sets still get a trained source (see `schedule_for`): the batch shrinks so an epoch has several steps, and
the epochs grow until the run has at least ``min_steps`` SGD steps. The kept weights are the final ones unless the
validation split is large enough to rank epochs (see `choose_kept`). A set with ≥ 1600 training images (and so
≥ 100 validation images) gets exactly the original recipe: batch 64, 20 epochs, best validation epoch kept.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field

from socketedge.data.cache import (TRAIN_RESIZE_RATIO, FrameStorage, apply_crop, batches, crop_flip_indices,
                                   decode_sets, split_indices)
from socketedge.data.folders import labeled_folder
from socketedge.data.preprocess import preprocessing_for
from socketedge.errors import ConfigError, DataError
from socketedge.models.checkpoint import save_source
from socketedge.models.ensemble import Member
from socketedge.models.predict import accuracy, predict
from socketedge.models.source_model import MIN_INPUT_SIZE, SourceModel, new_source_model
from socketedge.utils.device import resolve_device
from socketedge.utils.outputs import check_output_file
from socketedge.utils.progress import format_terms, make_progress


class TrainSourceConfig(BaseModel):
    data: Path
    out: Path
    arch: str = "resnet50"
    pretrained: bool = False
    modality: str = "rgb"
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-2, gt=0)
    # The recipe's 0.1× is for a pretrained backbone; one trained from scratch needs the full rate.
    backbone_lr_mult: float | None = Field(None, ge=0)  # default: 0.1 with --pretrained, else 1.0
    weight_decay: float = 1e-3
    momentum: float = 0.9
    label_smoothing: float = 0.1
    input_size: int | None = Field(None, ge=MIN_INPUT_SIZE)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    # At least this many SGD steps in all: a small set gets more epochs (the LR schedule spans the real total).
    min_steps: int = Field(500, ge=0)
    # Which weights to keep: "auto" = the best validation epoch when the validation split has at least
    # best_min_val images, else the final weights; "best" / "final" force one.
    select: str = "auto"
    best_min_val: int = 100
    seed: int = 0
    device: str = "auto"
    # decoded images beyond this many GiB go to the disk cache under cache_dir (None: the defaults); where the
    # frames live never changes the result
    memory_budget: float | None = Field(None, ge=0)
    cache_dir: Path | None = None
    show_progress: bool = True


SELECT = ("auto", "best", "final")
# A small set's batch is cut so an epoch has at least STEPS_PER_EPOCH steps, but not below MIN_BATCH (BatchNorm
# statistics of a handful of images are too noisy to train on).
STEPS_PER_EPOCH = 4
MIN_BATCH = 8


def schedule_for(n_train: int, batch_size: int, epochs: int, min_steps: int) -> dict:
    """The batch, epochs and SGD steps actually run on ``n_train`` training images (last partial batch dropped).

    batch = min(batch_size, n_train, max(MIN_BATCH, n_train // STEPS_PER_EPOCH)); epochs = the requested ones,
    raised until epochs × steps_per_epoch ≥ min_steps. With the defaults (64, 20, 500) a set of ≥ 1600 training
    images runs the requested recipe unchanged; 97 images run batch 24 × 4 steps × 125 epochs = 500 steps.
    """
    batch = max(1, min(batch_size, n_train, max(MIN_BATCH, n_train // STEPS_PER_EPOCH)))
    steps_per_epoch = max(1, n_train // batch)
    epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
    return {"batch_size": batch, "epochs": epochs, "steps_per_epoch": steps_per_epoch,
            "steps": epochs * steps_per_epoch}


def choose_kept(select: str, num_val: int, best_min_val: int) -> str:
    """``"best"`` or ``"final"``: which epoch's weights the checkpoint keeps.

    Ranking epochs by accuracy on a dozen validation images picks noise (one image is 8 points), and the epoch it
    picks is often an early, undertrained one; the poly schedule ends at 1/6 of the starting rate, so the final
    weights are a settled model. "auto" ranks epochs only when the validation split has ≥ ``best_min_val`` images.
    """
    if select == "auto":
        return "best" if num_val >= best_min_val else "final"
    return select


def poly_lr(base: float, progress: float, gamma: float = 10.0, power: float = 0.75) -> float:
    """The SHOT/SOCKET schedule: base · (1 + γ p)^-power, p ∈ [0, 1] the fraction of training done."""
    return base * (1.0 + gamma * progress) ** (-power)


def sgd_for(model: SourceModel, lr: float, backbone_mult: float, weight_decay: float, momentum: float,
            params: list | None = None) -> torch.optim.SGD:
    """SGD (nesterov) with the backbone at ``backbone_mult`` × the learning rate of bottleneck/classifier."""
    groups = [{"params": model.backbone_parameters(), "lr0": lr * backbone_mult},
              {"params": params if params is not None else model.head_parameters(), "lr0": lr}]
    groups = [g for g in groups if g["params"]]
    for g in groups:
        g["lr"] = g["lr0"]
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)


def set_lr(optimizer: torch.optim.Optimizer, progress: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = poly_lr(g["lr0"], progress)


def train_source(cfg: TrainSourceConfig) -> tuple[Path, dict]:
    check_output_file(cfg.out, "--out", "src.ckpt")
    images = labeled_folder(cfg.data, cfg.modality)
    n = len(images)
    if len(images.class_names or []) < 2:
        raise DataError(f"{cfg.data} has {len(images.class_names or [])} class folder(s) "
                        f"({', '.join(images.class_names or []) or 'none'}); a classifier needs at least 2: "
                        f"DATA/<class>/*.png for each class")
    if n < 4:
        raise DataError(f"{cfg.data} has {n} images; train-source needs at least a few per class")
    if not 0 < cfg.val_fraction < 1:
        raise ConfigError("--val-fraction must be between 0 and 1")
    if cfg.select not in SELECT:
        raise ConfigError(f"unknown --select {cfg.select!r}; expected one of {', '.join(SELECT)}")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = new_source_model(cfg.arch, images.class_names, pretrained=cfg.pretrained, input_size=cfg.input_size,
                             modality=cfg.modality)
    size = model.meta.input_size
    prep = preprocessing_for(model.meta, cfg.modality)
    member = Member(model, prep).to(device)  # shares the model's parameters
    preprocess = member.preprocess

    val_idx, train_idx = split_indices(n, [cfg.val_fraction, 1 - cfg.val_fraction], cfg.seed)
    if len(val_idx) == 0:
        val_idx, train_idx = train_idx[:1], train_idx[1:]
    load = round(size * TRAIN_RESIZE_RATIO)
    storage = FrameStorage.of(cfg.memory_budget, cfg.cache_dir)
    train, val = decode_sets([(images.subset(train_idx), load, "decoding train"),
                              (images.subset(val_idx), size, "decoding val")], cfg.show_progress, storage)

    mult = cfg.backbone_lr_mult if cfg.backbone_lr_mult is not None else (0.1 if cfg.pretrained else 1.0)
    optimizer = sgd_for(model, cfg.lr, mult, cfg.weight_decay, cfg.momentum)
    gen = torch.Generator().manual_seed(cfg.seed)
    schedule = schedule_for(len(train), cfg.batch_size, cfg.epochs, cfg.min_steps)
    batch_size, total = schedule["batch_size"], schedule["steps"]
    kept = choose_kept(cfg.select, len(val), cfg.best_min_val)
    use_amp = device.type == "cuda"
    best = {"val_accuracy": -1.0, "val_loss": math.inf, "epoch": -1}
    best_state: dict[str, torch.Tensor] | None = None
    history = []
    step = 0
    with make_progress(disable=not cfg.show_progress) as progress:
        task = progress.add_task("train-source", total=total, terms="")
        for epoch in range(schedule["epochs"]):
            model.train()
            correct = seen = 0
            loss_sum = 0.0
            for idx in batches(len(train), batch_size, gen, drop_last=True):
                rows, cols = crop_flip_indices(len(idx), load, size, gen)
                x = preprocess(apply_crop(train.raw[idx], rows, cols).to(device, non_blocking=True), sized=True)
                y = train.labels[idx].to(device)
                set_lr(optimizer, step / total)
                with torch.autocast(device.type, enabled=use_amp):
                    logits = model(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
                loss_sum += loss.item() * len(idx)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(idx)
                progress.update(task, advance=1, terms=format_terms({"epoch": epoch + 1, "loss": loss.item()}))
            val_logits = predict([member], val.raw, device).member_logits[0]  # the one eval loop
            val_acc = accuracy(val_logits.argmax(1), val.labels)
            val_loss = F.cross_entropy(val_logits, val.labels).item()
            record = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1),
                      "train_accuracy": 100.0 * correct / max(seen, 1), "val_accuracy": val_acc, "val_loss": val_loss}
            history.append(record)
            progress.update(task, terms=format_terms({"epoch": epoch + 1, "loss": record["loss"], "val_acc": val_acc}))
            if val_acc > best["val_accuracy"]:  # the first epoch to reach the top accuracy, as the recipe has it
                best = {"val_accuracy": val_acc, "val_loss": val_loss, "epoch": epoch + 1}
                if kept == "best":
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    final = {k: history[-1][k] for k in ("val_accuracy", "val_loss", "epoch")}
    metrics = {"kept": kept, "best": best, "final": final, "schedule": schedule, "history": history}
    model.meta = model.meta.model_copy(update={
        "train_config": cfg.model_dump(mode="json", exclude={"show_progress"}) | {
            "num_train": len(train), "num_val": len(val), "effective": schedule, "kept": kept},
        "metrics": metrics})
    path = save_source(model.cpu(), cfg.out)
    return path, metrics | {"num_train": len(train), "num_val": len(val), "class_names": images.class_names}
