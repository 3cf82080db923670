"""Adaptation settings. `shot` and `decision` are SOCKET with λ_TI = λ_d = 0 (one / several sources)."""

from __future__ import annotations

from pathlib import Path
from pydantic import BaseModel, Field, field_validator

from socketedge.errors import ConfigError

METHODS = ("socket", "shot", "decision")
TERM_SCALES = ("scaled", "paper")
RECALIBRATE = ("auto", "always", "never")


class AdaptConfig(BaseModel):
    sources: list[Path]
    target: Path
    out: Path
    ti: Path | None = None
    method: str = "socket"
    lambda_ti: float = Field(0.3, ge=0)
    lambda_d: float = Field(0.3, ge=0)
    lambda_pl: float = Field(0.3, ge=0)
    # scaled: dimensionless TI / BN terms (one λ for any backbone); paper: the raw forms as printed (reproduction)
    term_scale: str = "scaled"
    # Before the first and after the last epoch, BatchNorm running statistics may be re-estimated as their
    # average over the target frames. always / never; auto: with TI pairs, whichever statistics (re-estimated or
    # the ones the model has: the source's to start, the moving average at the end) make the target features
    # of the TI pairs more like ψ (linear CKA); without TI pairs, always.
    recalibrate_bn: str = "auto"
    epochs: int = Field(15, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-2, gt=0)
    backbone_lr_mult: float = Field(0.1, ge=0)
    # The backbone's rate for the TI term's gradient (× lr). The self-supervised terms train the backbone at
    # backbone_lr_mult (slowly, so their own predictions cannot drag the source features away); the TI term
    # regresses onto fixed targets from the frozen source, and a new sensor needs its early layers changed, so
    # with the scaled terms it trains the whole encoder at the head rate (None: 1.0). With --term-scale paper
    # (reproduction) None is backbone_lr_mult: one rate for every term, and the raw TI term's size unchanged.
    ti_backbone_lr_mult: float | None = Field(None, ge=0)
    # Each training step crops and flips both images of every TI pair the same way (as the target frames are
    # cropped and flipped) and takes ψ of that crop from the frozen source then. Off: the fixed frames and ψ
    # computed once, which a few hundred pairs let the encoder memorise.
    ti_augment: bool = True
    weight_decay: float = 1e-3
    momentum: float = 0.9
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    seed: int = 0
    resume: bool = False
    labels: Path | None = None
    modality: str | None = None
    depth_scale: float | None = Field(None, gt=0)  # metres per unit; None: the default (0.001), never 0
    depth_range: tuple[float, float] | None = None
    # the TI pairs' own depth units (default: recorded beside them, else the target's); see data/depth_units.py
    ti_depth_scale: float | None = None
    ti_depth_range: tuple[float, float] | None = None  # the TI camera's valid range (metres)
    ti_holdout: float = Field(0.2, ge=0, lt=1)  # share of TI pairs kept out of training for gap diagnostics
    gap_pairs: Path | None = None  # explicit held-out pairs for the gap diagnostics (then no TI hold-out)
    # decoded sets beyond this many GiB (summed) go to the disk cache under cache_dir (None: the defaults, see
    # data/cache.py FrameStorage); where frames live never changes the result
    memory_budget: float | None = Field(None, ge=0)
    cache_dir: Path | None = None
    show_progress: bool = True

    @field_validator("recalibrate_bn", mode="before")
    @classmethod
    def _recalibrate_bool(cls, v):
        # checkpoints and bundles written before the auto rule stored a bool
        return {True: "always", False: "never"}.get(v, v) if isinstance(v, bool) else v

    def effective(self) -> "AdaptConfig":
        """Validate the method's requirements and return the config with its effective λs and TI trunk rate."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        if self.term_scale not in TERM_SCALES:
            raise ConfigError(f"unknown --term-scale {self.term_scale!r}; expected one of {', '.join(TERM_SCALES)}")
        if self.recalibrate_bn not in RECALIBRATE:
            raise ConfigError(f"unknown --recalibrate-bn {self.recalibrate_bn!r}; expected one of "
                              f"{', '.join(RECALIBRATE)}")
        if self.ti_backbone_lr_mult is None:
            rate = 1.0 if self.term_scale == "scaled" else self.backbone_lr_mult
            return self.model_copy(update={"ti_backbone_lr_mult": rate}).effective()
        k = len(self.sources)
        if k == 0:
            raise ConfigError("no source model given; pass --source SRC.ckpt (repeat for several)")
        if self.method == "shot" and k != 1:
            raise ConfigError(f"shot adapts exactly one source, got {k}; use --method decision or socket")
        if self.method in ("shot", "decision"):
            return self.model_copy(update={"lambda_ti": 0.0, "lambda_d": 0.0})
        if self.lambda_ti > 0 and self.ti is None:
            raise ConfigError("socket needs paired task-irrelevant data: pass --ti DIR (DIR/<source modality> + "
                              "DIR/<target modality>) or set --lambda-ti 0")
        return self
