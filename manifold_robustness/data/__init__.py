"""Datasets as arrays behind one call: :func:`load`.

>>> from manifold_robustness import data
>>> train = data.load("fonts", "train", limit=1000)
>>> train.images.shape, train.labels[:10]   # float32[1000, 28, 28, 1] in [0, 1], labels 0..9

FONTS also returns its manifold coordinates (``font_ids``, ``theta``); :func:`fonts_prototypes`
gives the prototypes that the true-manifold decoder renders from.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from manifold_robustness.data.cache import DATA_DIR_ENV, data_dir
from manifold_robustness.data.fonts import FontsConfig, FontsData
from manifold_robustness.data import fonts as _fonts

__all__ = ["Dataset", "DATASETS", "load", "fonts_prototypes", "FontsConfig", "FontsData", "DATA_DIR_ENV", "data_dir"]

DATASETS = ("fonts",)


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A split as arrays. images: float32[N, H, W, C] in [0, 1] (or uint8 when asked);
    labels: int32[N]; for FONTS also font_ids: int32[N] and theta: float32[N, 6]."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    font_ids: np.ndarray | None = None
    theta: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _take(rows: np.ndarray, limit: int | None, name: str, split: str) -> np.ndarray:
    if limit is None:
        return rows
    if not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit must be a positive integer or None; got {limit!r}")
    if limit > rows.size:
        raise ValueError(f"limit={limit} is larger than the {name} {split} split, which has {rows.size} examples")
    return rows[:limit]


def load(
    name: str,
    split: str,
    limit: int | None = None,
    *,
    config: FontsConfig | None = None,
    data_dir: str | None = None,
    dtype=np.float32,
    progress: bool = False,
) -> Dataset:
    """Load ``split`` of dataset ``name``; ``limit=N`` keeps the first N examples (the paper's
    training subsets; class-balanced on FONTS for multiples of 10).

    ``dtype=np.uint8`` returns the raw bytes (the hot path keeps uint8 on device); the default
    float32 is in [0, 1].  FONTS is built and cached on first use (see :mod:`.fonts`).
    """
    name = name.lower()
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.uint8)):
        raise ValueError(f"dtype must be float32 or uint8; got {np.dtype(dtype)}")
    fonts = _fonts.build(config or FontsConfig(), data_dir=data_dir, progress=progress)
    rows = _take(fonts.split_rows(split), limit, name, split)
    contiguous = rows.size == 0 or rows[-1] - rows[0] + 1 == rows.size
    images = fonts.images[rows[0] : rows[-1] + 1] if contiguous else fonts.images[rows]
    images = np.asarray(images)[..., None]
    if np.dtype(dtype) == np.float32:
        images = images.astype(np.float32) / np.float32(255.0)
    return Dataset(
        name=name,
        split=split,
        images=images,
        labels=(rows % _fonts.NUM_CLASSES).astype(np.int32),
        num_classes=_fonts.NUM_CLASSES,
        font_ids=((rows // _fonts.NUM_CLASSES) % fonts.num_fonts).astype(np.int32),
        theta=np.asarray(fonts.theta[rows]),
    )


def fonts_prototypes(config: FontsConfig | None = None, data_dir: str | None = None) -> np.ndarray:
    """float32[F, 10, H, W, 1] in [0, 1]: the glyphs the true FONTS manifold renders from."""
    fonts = _fonts.build(config or FontsConfig(), data_dir=data_dir)
    return fonts.prototypes[..., None].astype(np.float32) / np.float32(255.0)
