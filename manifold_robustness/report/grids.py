"""Image grids as PNG files (shell code: it writes files)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def save_image_grid(
    images: np.ndarray,
    path: str | Path,
    ncols: int,
    col_titles: Sequence[str] | None = None,
    title: str | None = None,
    cell_inches: float = 0.6,
) -> Path:
    """Write images (float[N, H, W, C] in [0, 1] or uint8) as a grid PNG with ``ncols`` columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C]; got shape {images.shape}")
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / 255.0
    n = images.shape[0]
    nrows = -(-n // ncols)
    title_inches = 0.4 if title else 0.0
    height = nrows * cell_inches + title_inches
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * cell_inches, height))
    axes = np.atleast_2d(axes).reshape(nrows, ncols)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            img = images[i]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0.0, vmax=1.0)
        if col_titles is not None and i < ncols:
            ax.set_title(col_titles[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - title_inches / height))  # keep the title's strip free
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
