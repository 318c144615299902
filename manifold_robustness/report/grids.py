"""Image grids: matplotlib figures to show (notebooks) or write as PNG files.

The figures are built with ``matplotlib.figure.Figure`` directly, not through pyplot, so building
one neither switches the backend nor leaves a figure open: a notebook shows it by returning it
from a cell, a script writes it with ``fig.savefig``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from manifold_robustness.report import atomic

ATTACK_ROWS = ("clean", "adversarial", "perturbation")


def _as_float_images(images, name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"{name} must be [N, H, W, C]; got shape {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def _show(ax, img: np.ndarray, **kw) -> None:
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, **kw)


def image_grid_figure(
    images: np.ndarray,
    ncols: int,
    col_titles: Sequence[str] | None = None,
    title: str | None = None,
    cell_inches: float = 0.6,
):
    """A figure of images (float[N, H, W, C] in [0, 1] or uint8) in a grid with ``ncols`` columns,
    filled row by row; ``col_titles`` label the first row's columns."""
    from matplotlib.figure import Figure

    images = _as_float_images(images, "images")
    if ncols < 1:
        raise ValueError(f"ncols must be positive; got {ncols}")
    n = images.shape[0]
    nrows = max(1, -(-n // ncols))
    title_inches = 0.4 if title else 0.0
    height = nrows * cell_inches + title_inches
    fig = Figure(figsize=(ncols * cell_inches, height))
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False))
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            _show(ax, images[i], cmap="gray", vmin=0.0, vmax=1.0)
        if col_titles is not None and i < min(ncols, len(col_titles)):
            ax.set_title(col_titles[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - title_inches / height))  # keep the title's strip free
    return fig


def save_image_grid(
    images: np.ndarray,
    path: str | Path,
    ncols: int,
    col_titles: Sequence[str] | None = None,
    title: str | None = None,
    cell_inches: float = 0.6,
) -> Path:
    """Write images (float[N, H, W, C] in [0, 1] or uint8) as a grid PNG with ``ncols`` columns."""
    fig = image_grid_figure(images, ncols, col_titles=col_titles, title=title, cell_inches=cell_inches)
    path = atomic.save_figure(fig, path, dpi=100)
    return path


def first_success(x_adv, success) -> np.ndarray:
    """One adversarial image per example from an attack's restarts: x_adv float[R, B, H, W, C] and
    success bool[R, B] (an ``AttackResult``'s ``x`` and ``success``) → float[B, H, W, C], the
    first restart that succeeded, or restart 0 where none did."""
    x_adv, success = np.asarray(x_adv), np.asarray(success, bool)
    if x_adv.ndim != 5 or success.shape != x_adv.shape[:2]:
        raise ValueError(f"need x_adv [R, B, H, W, C] and success [R, B]; got {x_adv.shape} and {success.shape}")
    restart = np.argmax(success, axis=0)  # first True; 0 when the column is all False
    return x_adv[restart, np.arange(x_adv.shape[1])]


def attack_figure(
    clean: np.ndarray,
    adversarial: np.ndarray,
    labels: Sequence[int] | None = None,
    predictions: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    cell_inches: float = 0.8,
):
    """Clean images, adversarial images and their difference as three rows, one column per
    example (float[B, H, W, C] in [0, 1] or uint8 each; :func:`first_success` picks one image per
    example from an attack's restarts).

    The perturbation row shows adversarial − clean (summed over channels) on a diverging scale
    symmetric about 0, shared by all columns; the row's label gives the largest |δ| (L∞).  With
    ``labels`` and ``predictions`` (the classifier's class for the adversarial image) each column
    is titled "true → predicted", in red where the prediction changed.
    """
    from matplotlib.figure import Figure

    clean = _as_float_images(clean, "clean")
    adversarial = _as_float_images(adversarial, "adversarial")
    if clean.shape != adversarial.shape:
        raise ValueError(f"clean and adversarial images must have one shape; got {clean.shape} and {adversarial.shape}")
    b = clean.shape[0]
    if b == 0:
        raise ValueError("need at least one example")
    for name, v in (("labels", labels), ("predictions", predictions)):
        if v is not None and len(v) != b:
            raise ValueError(f"{name} must have one entry per example ({b}); got {len(v)}")
    delta = (adversarial - clean).sum(axis=-1)
    scale = float(np.abs(delta).max()) or 1.0
    linf = float(np.abs(adversarial - clean).max())

    name = (lambda k: str(class_names[int(k)])) if class_names is not None else (lambda k: str(int(k)))
    title_inches = 0.4 if title else 0.0
    height = 3 * cell_inches + title_inches + (0.25 if labels is not None else 0.0)
    fig = Figure(figsize=(b * cell_inches + 0.9, height))
    axes = np.asarray(fig.subplots(3, b, squeeze=False))
    for j in range(b):
        _show(axes[0, j], clean[j], cmap="gray", vmin=0.0, vmax=1.0)
        _show(axes[1, j], adversarial[j], cmap="gray", vmin=0.0, vmax=1.0)
        axes[2, j].imshow(delta[j], cmap="RdBu_r", vmin=-scale, vmax=scale)
        if labels is not None:
            text = name(labels[j])
            changed = False
            if predictions is not None:
                text += " → " + name(predictions[j])
                changed = int(predictions[j]) != int(labels[j])
            axes[0, j].set_title(text, fontsize=8, color="tab:red" if changed else "black")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for i, row in enumerate(ATTACK_ROWS):
        label = f"δ (max {linf:.2f})" if row == "perturbation" else row
        axes[i, 0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - title_inches / height))
    return fig
