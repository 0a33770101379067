"""The training curve PNG of a run: loss and validation DSC over iterations."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_curve(rows: list[dict], path: Path, title: str) -> None:
    """Training loss (left axis, log scale) and validation DSC (right axis) over iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sneakynet.io import atomic_path

    train = [r for r in rows if r.get("kind") == "train" and r.get("loss") is not None]
    val = [r for r in rows if r.get("kind") == "val" and r.get("val_dsc") is not None]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        its = np.array([r["iteration"] for r in train])
        loss = np.array([r["loss"] for r in train], dtype=float)
        window = max(1, len(loss) // 25)
        if window > 1:  # raw values faint, moving average on top
            ax.plot(its, loss, color="tab:blue", lw=0.6, alpha=0.3)
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            ax.plot(its[window - 1:], smooth, color="tab:blue", lw=1.4,
                    label=f"training loss (CE + Dice, all branches; mean of {window} logs)")
        else:
            ax.plot(its, loss, color="tab:blue", lw=1.2, label="training loss (CE + Dice, all branches)")
        if np.all(loss > 0) and loss.max() / loss.min() > 10:
            ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss", color="tab:blue")
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if val:
        ax2 = ax.twinx()
        ax2.plot([r["iteration"] for r in val], [r["val_dsc"] for r in val], "o-", color="tab:red", lw=1.2, ms=3,
                 label="validation mean DSC")
        ax2.set_ylabel("validation mean DSC", color="tab:red")
        ax2.set_ylim(0, 1)
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if handles:
        ax.legend(handles, labels, loc="upper center", fontsize=8, framealpha=0.8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


__all__ = ["plot_curve"]
