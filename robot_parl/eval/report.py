"""The evaluation report: results.json summarised as an HTML page that leads with pictures (success with
95% intervals, a learning curve from the session's own journal, latency histograms, a frame per mode)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _figures(summary: dict, episodes: list[dict], curve: list[tuple[int, float]]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    modes = list(summary)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    rates = [100 * summary[m]["success_rate"] for m in modes]
    low = [100 * (summary[m]["success_rate"] - summary[m]["wilson95"][0]) for m in modes]
    high = [100 * (summary[m]["wilson95"][1] - summary[m]["success_rate"]) for m in modes]
    ax.bar(range(len(modes)), rates, yerr=[low, high], capsize=6, color="#4c72b0")
    ax.set_xticks(range(len(modes)), modes, rotation=15)
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 100)
    ax.set_title("success with Wilson 95% intervals")
    fig.tight_layout()
    out.append(("Success", _png(fig)))
    if curve:
        fig, ax = plt.subplots(figsize=(6.4, 3.2))
        ax.plot([c[0] for c in curve], [100 * c[1] for c in curve], marker="o")
        ax.set_xlabel("training episode")
        ax.set_ylabel("success, last 10 (%)")
        ax.set_ylim(0, 100)
        ax.set_title("learning curve (the session's rollouts)")
        fig.tight_layout()
        out.append(("Learning curve", _png(fig)))
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for mode in modes:
        ms = [x for e in episodes if e["mode"] == mode for x in e["step_ms"]]
        if ms:
            ax.hist(ms, bins=30, alpha=0.5, label=mode)
    ax.set_xlabel("decision latency per step (ms)")
    ax.legend()
    fig.tight_layout()
    out.append(("Latency", _png(fig)))
    return out


def write_report(path: str | Path, title: str, summary: dict, episodes: list[dict],
                 curve: list[tuple[int, float]], thumbnails: dict[str, np.ndarray]) -> Path:
    """Write the HTML report (images embedded, so the file stands alone)."""
    from PIL import Image

    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:980px;margin:auto}td,th{padding:4px 10px}"
             "img.t{width:160px;image-rendering:pixelated}</style>", f"<h1>{html.escape(title)}</h1>"]
    for heading, png in _figures(summary, episodes, curve):
        parts.append(f"<h2>{heading}</h2><img alt='{heading}' src='data:image/png;base64,{png}'>")
    parts.append("<h2>Last frame of each mode's last episode</h2><div>")
    for mode, frame in thumbnails.items():
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG")
        parts.append(f"<figure style='display:inline-block'><img class='t' src='data:image/png;base64,"
                     f"{base64.b64encode(buf.getvalue()).decode()}'><figcaption>{html.escape(mode)}</figcaption>"
                     "</figure>")
    parts.append("</div><h2>Numbers</h2><table><tr><th>mode</th><th>episodes</th><th>successes</th><th>rate</th>"
                 "<th>Wilson 95%</th><th>mean length</th></tr>")
    for mode, s in summary.items():
        parts.append(f"<tr><td>{html.escape(mode)}</td><td>{s['episodes']}</td><td>{s['successes']}</td>"
                     f"<td>{s['success_rate']:.1%}</td><td>{s['wilson95'][0]:.1%} - {s['wilson95'][1]:.1%}</td>"
                     f"<td>{s['mean_length']:.1f}</td></tr>")
    parts.append("</table>")
    path = Path(path)
    path.write_text("\n".join(parts))
    return path
