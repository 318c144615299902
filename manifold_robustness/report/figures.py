"""The report's figures as PNG files (shell code: it writes files).  Our curves are solid with
error bars (std over seeds); the paper's are dashed and faint in the same colour.

- :func:`gallery` — paper Fig. 2: clean / regular adversarial / its perturbation / on-manifold
  adversarial / its perturbation, one row per test image;
- :func:`curves` — paper Figs. 5 and 6: panels of one quantity against N (log-x) or against the
  test error, per method;
- :func:`tradeoff` — paper Fig. 7 bottom: regular success against test error, one point per model.

Distance histograms (Fig. 3) come from :func:`manifold_robustness.report.distances.plot_histograms`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from manifold_robustness.report import atomic

METHOD_COLORS = {
    "normal": "#444444", "regular_at": "#d62728", "on_true_manifold_at": "#1f77b4", "augment": "#8c564b",
    "adversarial_transformation": "#9467bd", "on_learned_manifold_at": "#2ca02c",
}
_EXTRA = ("#ff7f0e", "#17becf", "#bcbd22", "#e377c2", "#7f7f7f")


def method_color(method: str, order: Sequence[str] = ()) -> str:
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    others = [m for m in order if m not in METHOD_COLORS]
    return _EXTRA[(others.index(method) if method in others else len(others)) % len(_EXTRA)]


@dataclasses.dataclass
class Curve:
    """One method in one panel: ours (x, y, yerr or None) and optionally the paper's (x, y)."""

    method: str
    x: Sequence[float]
    y: Sequence[float]
    yerr: Sequence[float] | None = None
    paper_x: Sequence[float] | None = None
    paper_y: Sequence[float] | None = None


@dataclasses.dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    curves: list[Curve]
    logx: bool = False
    percent: bool = True  # y values are fractions shown as percent
    xpercent: bool = False  # x values too (test error on the x axis)


def curves(panels: Sequence[Panel], path: str | Path, *, title: str | None = None) -> Path:
    """Side-by-side panels (one row) as a PNG; the legend distinguishes ours from the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    order = [c.method for p in panels for c in p.curves]
    for ax, panel in zip(axes[0], panels):
        scale = 100.0 if panel.percent else 1.0
        xscale = 100.0 if panel.xpercent else 1.0
        for c in panel.curves:
            color = method_color(c.method, order)
            if c.paper_x is not None and len(c.paper_x):
                ax.plot(np.asarray(c.paper_x, float) * xscale,
                        np.asarray(c.paper_y, float) * scale, "--", color=color, alpha=0.35, lw=1.2)
            if len(c.x):
                x = np.asarray(c.x, float) * xscale
                yerr = None if c.yerr is None else np.nan_to_num(np.asarray(c.yerr, float)) * scale
                ax.errorbar(x, np.asarray(c.y, float) * scale, yerr=yerr, fmt="o-", color=color, ms=3.5, lw=1.5,
                            capsize=2, label=c.method)
        if panel.logx:
            ax.set_xscale("log")
        ax.set_xlabel(panel.xlabel + (" (%)" if panel.xpercent else ""))
        ax.set_ylabel(panel.ylabel + (" (%)" if panel.percent else ""))
        ax.set_title(panel.title, fontsize=9)
        _legend(ax, Line2D([], [], color="k", marker="o", ms=3.5), "ours (mean ± std over seeds)",
                Line2D([], [], color="k", ls="--", alpha=0.35))
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _legend(ax, ours, ours_label: str, theirs) -> None:
    """A grid, and the legend of the methods followed by what marks ours and the paper's."""
    ax.grid(alpha=0.25)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend([*handles, ours, theirs], [*labels, ours_label, "paper"], fontsize=6.5, frameon=False)


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = atomic.save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def tradeoff(points: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, *,
             paper: Mapping[str, tuple[float, float]] | None = None, title: str | None = None) -> Path:
    """Regular success against test error (fractions, shown in %): ``points`` method → (errors,
    successes), one marker per model; ``paper`` method → (error, success), a hollow marker of the
    same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(4.8, 3.8))
    order = list(points) + [m for m in (paper or {}) if m not in points]
    for m, (err, succ) in points.items():
        ax.plot(100 * np.asarray(err, float), 100 * np.asarray(succ, float), "o", color=method_color(m, order),
                ms=5, label=m)
    for m, (err, succ) in (paper or {}).items():
        ax.plot([100 * err], [100 * succ], "s", mfc="none", color=method_color(m, order), ms=8, mew=1.4,
                label=None if m in points else m)
    ax.set_xlabel("test error (%)")
    ax.set_ylabel("regular success (%)")
    _legend(ax, Line2D([], [], color="k", marker="o", ls=""), "ours (one per model)",
            Line2D([], [], color="k", marker="s", mfc="none", ls=""))
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _perturbation(adv: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """adv − clean mapped to [0, 1] (0.5 = unchanged), scaled per image by its largest change."""
    d = adv - clean
    scale = np.abs(d).reshape(len(d), -1).max(axis=1).reshape(-1, *([1] * (d.ndim - 1)))
    return np.clip(0.5 + 0.5 * d / np.maximum(scale, 1e-8), 0.0, 1.0)


GALLERY_COLUMNS = ("clean", "regular AE", "regular δ", "on-manifold AE", "on-manifold δ")


def gallery(arrays: Mapping[str, np.ndarray], path: str | Path, *, rows: int = 8, title: str | None = None) -> Path:
    """Paper Fig. 2 from one run's ``gallery/*`` arrays: per test image a row of
    :data:`GALLERY_COLUMNS`; perturbations are shown as 0.5 + δ / (2 max|δ|) per image.  The
    on-manifold perturbation is taken against ``gallery/on_manifold_clean`` when present (the
    image the on-manifold attack started from), else against the clean image."""
    from manifold_robustness.report.grids import save_image_grid

    def image(name, default=None):
        a = np.asarray(arrays[name]) if name in arrays else default
        return a.astype(np.float32) / np.float32(255.0) if a.dtype == np.uint8 else a.astype(np.float32)

    clean = image("gallery/clean")
    k = min(rows, len(clean))
    clean = clean[:k]
    reg, on = image("gallery/regular", clean)[:k], image("gallery/on_manifold", clean)[:k]
    on_clean = image("gallery/on_manifold_clean", clean)[:k]
    cols = [clean, reg, _perturbation(reg, clean), on, _perturbation(on, on_clean)]
    grid = np.stack(cols, axis=1).reshape(k * len(cols), *clean.shape[1:])
    return save_image_grid(np.clip(grid, 0.0, 1.0), path, ncols=len(cols), col_titles=list(GALLERY_COLUMNS),
                           title=title, cell_inches=0.9)
