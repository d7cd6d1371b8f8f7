"""Learning-curve PNGs of a grid of seeds."""

import pytest

from robot_parl.eval.curves import plot_success_curves


def _curve(*successes, every=25):
    return [{"online_episodes": every * i, "agent_success": s} for i, s in enumerate(successes)]


def test_seed_bands_draw_a_panel_per_class_and_a_mean_line_with_the_seed_range(tmp_path, monkeypatch):
    import matplotlib.axes

    drawn = {}
    plot = matplotlib.axes.Axes.plot
    band = matplotlib.axes.Axes.fill_between

    def record_plot(ax, x, y, **kw):
        drawn.setdefault(id(ax), []).append(("mean", list(x), list(y)))
        return plot(ax, x, y, **kw)

    def record_band(ax, x, lo, hi, **kw):
        drawn.setdefault(id(ax), []).append(("range", list(lo), list(hi)))
        return band(ax, x, lo, hi, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record_plot)
    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between", record_band)
    panels = {"diffusion": {"parl": [_curve(0.2, 0.6), _curve(0.4, 1.0)], "rerank": [_curve(0.2, 0.4)]},
              "autoregressive": {"parl": [_curve(0.0, 0.5)]}}
    plot_success_curves(panels, tmp_path / "grid.png", "Pick")

    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"
    first, second = drawn.values()  # in panel order
    assert first == [("mean", [0, 25], pytest.approx([30.0, 80.0])), ("range", [20.0, 60.0], [40.0, 100.0]),
                     ("mean", [0, 25], pytest.approx([20.0, 40.0])), ("range", [20.0, 40.0], [20.0, 40.0])]
    assert second == [("mean", [0, 25], [0.0, 50.0]), ("range", [0.0, 50.0], [0.0, 50.0])]


def test_seed_curves_evaluated_at_different_points_are_refused(tmp_path):
    panels = {"diffusion": {"parl": [_curve(0.2, 0.6), _curve(0.4, 1.0, every=20)]}}
    with pytest.raises(ValueError, match="diffusion parl: .* at different online_episodes"):
        plot_success_curves(panels, tmp_path / "grid.png", "Pick")
    assert not (tmp_path / "grid.png").exists()
