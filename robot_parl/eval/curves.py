"""Learning-curve plots (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_success_curves(curves: dict[str, list[dict]], path: str | Path, title: str,
                        x_key: str = "online_episodes", y_key: str = "agent_success") -> None:
    """One line per label: success rate against online episodes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for label, points in curves.items():
        ax.plot([p[x_key] for p in points], [100 * p[y_key] for p in points], marker="o", label=label)
    _style(ax, x_key, title)
    _save(fig, path)


def plot_seed_bands(panels: dict[str, dict[str, list[list[dict]]]], path: str | Path, title: str,
                    x_key: str = "online_episodes", y_key: str = "agent_success") -> None:
    """One panel per key of ``panels`` (e.g. a policy class), in it one line per method: the mean success over
    that method's curves (one per seed, evaluated at the same x) with the range across seeds shaded, so a grid
    of seeds stays readable."""
    for panel, methods in panels.items():
        for method, seed_curves in methods.items():
            if any([p[x_key] for p in c] != [p[x_key] for p in seed_curves[0]] for c in seed_curves):
                raise ValueError(f"{panel} {method}: the seeds' curves are evaluated at different {x_key}")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), dpi=120, squeeze=False)
    for ax, (panel, methods) in zip(axes[0], panels.items()):
        for method, seed_curves in methods.items():
            x = [p[x_key] for p in seed_curves[0]]
            y = 100 * np.array([[p[y_key] for p in c] for c in seed_curves])
            line, = ax.plot(x, y.mean(axis=0), marker="o", label=f"{method} (mean of {len(seed_curves)})")
            ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=line.get_color(), alpha=0.15)
        _style(ax, x_key, f"{title}: {panel}")
    _save(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(ax, x_key: str, title: str) -> None:
    ax.set_xlabel(x_key.replace("_", " "))
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend()


def _save(fig, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
