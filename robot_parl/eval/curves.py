"""Learning-curve plots (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_success_curves(panels: dict[str, dict[str, list[list[dict]]]], path: str | Path, title: str,
                        x_key: str = "online_episodes", y_key: str = "agent_success") -> None:
    """Success rate against online episodes: one panel per key of ``panels`` (e.g. a policy class), in it one
    line per label, drawn from that label's curves (one per seed, evaluated at the same x): their mean, with
    the range across seeds shaded, so a grid of seeds stays readable."""
    for panel, labels in panels.items():
        for label, seed_curves in labels.items():
            if any([p[x_key] for p in c] != [p[x_key] for p in seed_curves[0]] for c in seed_curves):
                raise ValueError(f"{panel} {label}: the seeds' curves are evaluated at different {x_key}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), dpi=120, squeeze=False)
    for ax, (panel, labels) in zip(axes[0], panels.items()):
        for label, seed_curves in labels.items():
            x = [p[x_key] for p in seed_curves[0]]
            y = 100 * np.array([[p[y_key] for p in c] for c in seed_curves])
            n = len(seed_curves)
            line, = ax.plot(x, y.mean(axis=0), marker="o", label=f"{label} (mean of {n})" if n > 1 else label)
            ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=line.get_color(), alpha=0.15)
        ax.set_xlabel(x_key.replace("_", " "))
        ax.set_ylabel("success (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.set_title(f"{title}: {panel}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
