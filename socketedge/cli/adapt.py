"""`socketedge adapt`: SOCKET (default), SHOT or DECISION from source models of one modality (RGB, or e.g. NIR, as
their checkpoints record) to another, the target modality."""

from __future__ import annotations

from pathlib import Path

import typer

ORDER = 30


def register(app: typer.Typer) -> None:
    @app.command("adapt")
    def adapt_cmd(
        ctx: typer.Context,
        source: list[Path] = typer.Option(..., "--source", help="Source checkpoint (its modality is recorded in "
                                          "it); repeat for several."),
        target: Path = typer.Option(..., help="Unlabeled target-modality images (flat or class folders)."),
        out: Path = typer.Option(..., help="Directory for the adapted bundle."),
        ti: Path = typer.Option(None, help="Task-irrelevant pairs: TI/<source modality>/… + TI/<target "
                                "modality>/… matched by name (a session or an import's ti/ records depth units)."),
        method: str = typer.Option("socket", help="socket | shot (one source) | decision (several sources)."),
        lambda_ti: float = typer.Option(0.3, help="Weight of the TI feature-distance term."),
        lambda_d: float = typer.Option(0.3, help="Weight of the BatchNorm-statistics term."),
        lambda_pl: float = typer.Option(0.3, help="Weight of the pseudo-label term."),
        term_scale: str = typer.Option("scaled", help="scaled: dimensionless TI/BN terms, one λ for any backbone; "
                                       "paper: the raw forms as printed (their size depends on the network)."),
        recalibrate_bn: str = typer.Option("auto", help="Before the first and after the last epoch, re-estimate "
                                           "BatchNorm running statistics on the target images: always | never | "
                                           "auto (with TI pairs: only if that makes the target features of the "
                                           "pairs more like the source's, by linear CKA; else always)."),
        epochs: int = typer.Option(15, min=1),
        batch_size: int = typer.Option(32, min=2),
        lr: float = typer.Option(1e-2, help="Bottleneck and ζ learning rate; the backbone gets 0.1× from ent, div, "
                                 "pl and the BN term."),
        ti_backbone_lr_mult: float = typer.Option(None, min=0, help="Backbone rate ÷ lr for the TI term's gradient "
                                                  "(default 1, the head rate; with --term-scale paper 0.1, the "
                                                  "other terms' rate)."),
        ti_augment: bool = typer.Option(True, "--ti-augment/--no-ti-augment", help="Crop and flip both images of "
                                        "each TI pair alike every step (ψ from the frozen source then)."),
        device: str = typer.Option("auto", help="auto | cpu | cuda"),
        amp: bool = typer.Option(True, "--amp/--no-amp", help="bf16 autocast on CUDA."),
        seed: int = typer.Option(0),
        resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out."),
        labels: Path = typer.Option(None, help="Labeled target data, only to report accuracy each epoch."),
        modality: str = typer.Option(None, help="Target modality: rgb | depth | nir | thermal, not the sources' "
                                     "(default: from the folder name)."),
        depth_scale: float = typer.Option(None, help="Metres per target depth unit (default: recorded with the "
                                          "target, else 0.001)."),
        depth_range: str = typer.Option(None, help="Depth clip range NEAR,FAR in metres (default: the target's "
                                        "recorded valid range, else 0.3,5)."),
        ti_depth_scale: float = typer.Option(None, help="Metres per TI depth unit, when the pairs come from another "
                                             "camera (default: recorded with the pairs, else the target's)."),
        ti_depth_range: str = typer.Option(None, help="Valid depth range NEAR,FAR (metres) of the TI camera; depth "
                                           "outside counts as missing (default: recorded with the pairs, else none)."),
        ti_holdout: float = typer.Option(0.2, help="Share of TI pairs held out for modality-gap diagnostics."),
        gap_pairs: Path = typer.Option(None, help="Held-out pairs for the gap diagnostics (instead of --ti-holdout)."),
        memory_budget: float = typer.Option(None, min=0, help="GiB of decoded frames held in memory (default "
                                            "1); larger sets are decoded once into the disk cache and read from "
                                            "there. 0: always the disk cache. Never changes the result."),
        cache_dir: Path = typer.Option(None, help="Disk cache of decoded frames (default $SOCKETEDGE_CACHE_DIR, "
                                       "else ~/.cache/socketedge/frames)."),
        distributed: int = typer.Option(1, min=1, help="Data-parallel ranks on this machine (launches torchrun; "
                                        "--batch-size stays the global batch). For several machines see README."),
    ) -> None:
        """Adapt source model(s) to the target modality without task data of the source modality."""
        import os

        if distributed > 1:
            from socketedge.adapt.distributed import launch_local

            code = launch_local(distributed, ["adapt", *_forward_args(ctx, skip={"distributed"})])
            if code:
                raise typer.Exit(code)
            return
        from socketedge.adapt.config import AdaptConfig
        from socketedge.adapt.run import AdaptInterrupted, adapt
        from socketedge.cli.eval import _range
        from socketedge.utils.progress import console

        cfg = AdaptConfig(sources=source, target=target, out=out, ti=ti, method=method, lambda_ti=lambda_ti,
                          lambda_d=lambda_d, lambda_pl=lambda_pl, term_scale=term_scale,
                          recalibrate_bn=recalibrate_bn, epochs=epochs, batch_size=batch_size, lr=lr,
                          ti_backbone_lr_mult=ti_backbone_lr_mult, ti_augment=ti_augment,
                          device=device, amp=amp, seed=seed, resume=resume, labels=labels, modality=modality,
                          depth_scale=depth_scale, depth_range=_range(depth_range), ti_depth_scale=ti_depth_scale,
                          ti_depth_range=_range(ti_depth_range), ti_holdout=ti_holdout,
                          gap_pairs=gap_pairs, memory_budget=memory_budget, cache_dir=cache_dir)
        try:
            result = adapt(cfg)
        except AdaptInterrupted as e:
            if int(os.environ.get("RANK", "0")) == 0:
                console.print(f"[yellow]{e}[/]")
            raise typer.Exit(130) from None
        if not result.is_main:  # another rank of a data-parallel run: rank 0 reports
            return
        m = result.metrics
        final = m.get("final", {})
        parts = [f"ζ = {[round(z, 3) for z in m['zeta']]}"]
        for key, label in (("accuracy", "accuracy"), ("target_accuracy", "target accuracy")):
            if key in final:
                parts.append(f"{label} {final[key]:.1f}%")
        if "gap" in m:
            b, a = m["gap"]["before"]["mixed"], m["gap"]["after"]["mixed"]
            parts.append(f"held-out gap distance {b['distance']:.3f} → {a['distance']:.3f}, "
                         f"CKA {b['cka']:.3f} → {a['cka']:.3f}")
        console.print(f"[green]wrote[/] {result.bundle} ({cfg.method}): " + "; ".join(parts))


def _forward_args(ctx: typer.Context, skip: set[str]) -> list[str]:
    """The parsed options of this command as command-line arguments again (for the ranks torchrun starts)."""
    args: list[str] = []
    for param in ctx.command.params:
        if param.name in skip or param.name not in ctx.params or not getattr(param, "opts", None):
            continue
        value = ctx.params[param.name]
        if value is None:
            continue
        if getattr(param, "is_flag", False):
            if value:
                args.append(param.opts[0])
            elif param.secondary_opts:
                args.append(param.secondary_opts[0])
            continue
        for v in value if getattr(param, "multiple", False) else [value]:
            args += [param.opts[0], str(v)]
    return args
