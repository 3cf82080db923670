"""Pictures of an adaptation run: loss terms, ζ and accuracies per epoch; the modality gap before/after."""

from __future__ import annotations

from pathlib import Path

from socketedge.utils.atomic import atomic_path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: list[dict], path: Path, method: str, grad_balance: dict | None = None) -> None:
    if not history:
        return
    plt = _plt()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 4 if grad_balance else 3, figsize=(18 if grad_balance else 14, 4))
    for term in ("loss", "ent", "div", "pl", "ti", "bn"):
        if any(term in h for h in history):
            axes[0].plot(epochs, [h.get(term, float("nan")) for h in history], marker="o", label=term)
    axes[0].set_title(f"{method}: loss terms (epoch means)")
    axes[0].legend()
    zetas = [h["zeta"] for h in history]
    for k in range(len(zetas[0])):
        axes[1].plot(epochs, [z[k] for z in zetas], marker="o", label=f"ζ{k}")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("mixing weights ζ")
    axes[1].legend()
    for key, label in (("accuracy", "accuracy (--labels)"), ("target_accuracy", "target accuracy"),
                       ("pl_accuracy", "pseudo-label accuracy")):
        if any(key in h for h in history):
            axes[2].plot(epochs, [h.get(key, float("nan")) for h in history], marker="o", label=label)
    axes[2].set_title("accuracy % (never used for training)")
    if axes[2].lines:
        axes[2].legend()
    for ax in axes[:3]:
        ax.set_xlabel("epoch")
    if grad_balance:
        norms = grad_balance["grad_norm"]
        names = list(norms)
        axes[3].bar(names, [norms[n] for n in names],
                    color=["tab:grey" if n == "ent_div" else "tab:blue" for n in names])
        axes[3].axhline(10 * norms["ent_div"], color="tab:red", ls="--", lw=1, label="10× ent−div")
        axes[3].set_yscale("log")
        axes[3].set_title(f"encoder gradient norm at step 1 (λ-weighted, {grad_balance['term_scale']})")
        axes[3].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(path), durable=False) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


def plot_gap(gap: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, when in zip(axes, ("before", "after")):
        g = gap[when]
        rgb, tgt = g["projection"]["rgb"], g["projection"]["target"]
        ax.scatter([p[0] for p in rgb], [p[1] for p in rgb], s=14, c="tab:orange", label="RGB (source encoder)")
        ax.scatter([p[0] for p in tgt], [p[1] for p in tgt], s=14, c="tab:blue", label="target modality")
        for a, b in zip(rgb, tgt):
            ax.plot([a[0], b[0]], [a[1], b[1]], c="grey", lw=0.3, alpha=0.5)
        s = g["mixed"]
        ax.set_title(f"{when} adaptation: distance {s['distance']:.2f}, CKA {s['cka']:.2f}")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"held-out task-irrelevant pairs (n={gap['before']['n_pairs']}), joint PCA of features")
    fig.tight_layout()
    with atomic_path(Path(path), durable=False) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
