"""Learning-curve plots (PNG)."""

from __future__ import annotations

from pathlib import Path


def plot_success_curves(curves: dict[str, list[dict]], path: str | Path, title: str,
                        x_key: str = "online_episodes", y_key: str = "agent_success") -> None:
    """One line per label: success rate against online episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for label, points in curves.items():
        ax.plot([p[x_key] for p in points], [100 * p[y_key] for p in points], marker="o", label=label)
    ax.set_xlabel(x_key.replace("_", " "))
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
