"""Datasets as arrays behind one call: :func:`load`.

>>> from manifold_robustness import data
>>> train = data.load("fonts", "train", limit=1000)
>>> train.images.shape, train.labels[:10]   # float32[1000, 28, 28, 1] in [0, 1], labels 0..9
>>> data.load("fashion_mnist", "test").images.shape   # (10000, 28, 28, 1)

Datasets (:data:`DATASETS`): ``fonts`` (rendered here, see :mod:`.fonts`), ``fashion_mnist``,
``emnist`` (the paper's EMNIST: the *digits* split), ``emnist_letters`` (:mod:`.idx_datasets`)
and ``celeba`` (:mod:`.celeba`).  Fashion-MNIST, EMNIST and CelebA are read from their original
files in a source folder: the ``source_dir`` argument, else the environment variable
``MANIFOLD_ROBUSTNESS_FASHION_MNIST`` / ``MANIFOLD_ROBUSTNESS_EMNIST`` /
``MANIFOLD_ROBUSTNESS_CELEBA``, else a default (Fashion-MNIST: Debian's
/usr/share/datasets/fashion-mnist; EMNIST and CelebA: ``<data dir>/emnist``, ``<data dir>/celeba``).
Nothing is downloaded: missing files raise a FileNotFoundError that says what to put where.

FONTS also returns its manifold coordinates (``font_ids``, ``theta``); :func:`fonts_prototypes`
gives the prototypes that the true-manifold decoder renders from.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from manifold_robustness.data.cache import DATA_DIR_ENV, data_dir
from manifold_robustness.data.celeba import CELEBA_ENV, CelebAConfig
from manifold_robustness.data.fontfaces import LETTERS
from manifold_robustness.data.fonts import FontsConfig, FontsData
from manifold_robustness.data.idx_datasets import EMNIST_ENV, FASHION_MNIST_ENV
from manifold_robustness.data.sources import MissingDatasetFilesError
from manifold_robustness.data import celeba as _celeba
from manifold_robustness.data import fonts as _fonts
from manifold_robustness.data import idx_datasets as _idx_datasets

__all__ = [
    "Dataset", "DATASETS", "load", "from_tfds", "fonts_prototypes", "FontsConfig", "FontsData", "CelebAConfig",
    "MissingDatasetFilesError", "DATA_DIR_ENV", "FASHION_MNIST_ENV", "EMNIST_ENV", "CELEBA_ENV", "data_dir",
]

DATASETS = ("fonts", "fashion_mnist", "emnist", "emnist_letters", "celeba")
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A split as arrays. images: float32[N, H, W, C] in [0, 1] (or uint8 when asked);
    labels: int32[N] in [0, num_classes); for FONTS also font_ids: int32[N] and theta: float32[N, 6].
    ``class_names[k]`` names label k."""

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    font_ids: np.ndarray | None = None
    theta: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def _take(rows: np.ndarray, limit: int | None, name: str, split: str) -> np.ndarray:
    if limit is None:
        return rows
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"limit must be a positive integer or None; got {limit!r}")
    if limit > rows.size:
        raise ValueError(f"limit={limit} is larger than the {name} {split} split, which has {rows.size} examples")
    return rows[:limit]


def _gather(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """array[rows], as one slice when the rows are contiguous (cheap on memory-mapped arrays)."""
    if rows.size and rows[-1] - rows[0] + 1 == rows.size:
        return np.asarray(array[rows[0] : rows[-1] + 1])
    return np.asarray(array[rows])


def _as_dtype(images: np.ndarray, dtype) -> np.ndarray:
    if np.dtype(dtype) == np.float32:
        return images.astype(np.float32) / np.float32(255.0)
    return images


def load(
    name: str,
    split: str,
    limit: int | None = None,
    *,
    config: FontsConfig | CelebAConfig | None = None,
    source_dir: str | None = None,
    data_dir: str | None = None,
    dtype=np.float32,
    progress: bool | None = None,
) -> Dataset:
    """Load ``split`` ("train" | "test") of dataset ``name``; ``limit=N`` keeps the first N
    examples (the paper's training subsets; class-balanced on FONTS for multiples of 10).

    images: float32[N, H, W, C] in [0, 1], or uint8 with ``dtype=np.uint8`` (the hot path keeps
    uint8 on device): 28×28×1 for FONTS, Fashion-MNIST and EMNIST, 56×48×3 for CelebA.
    labels: int32[N].  ``config``: a :class:`FontsConfig` for FONTS or a :class:`CelebAConfig`
    for CelebA.  ``source_dir``: the folder with the original files (Fashion-MNIST, EMNIST,
    CelebA).  ``data_dir``: the cache (default ``$MANIFOLD_ROBUSTNESS_DATA``).  FONTS is rendered
    and CelebA converted once, then read from the cache; ``progress`` shows a bar while doing so
    (default: only for the CelebA conversion).
    """
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    name = name.lower()
    if split not in SPLITS:
        raise ValueError(f"{name} has splits 'train' and 'test'; got {split!r}")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.uint8)):
        raise ValueError(f"dtype must be float32 or uint8; got {np.dtype(dtype)}")
    wanted = {"fonts": FontsConfig, "celeba": CelebAConfig}.get(name)
    if config is not None and (wanted is None or not isinstance(config, wanted)):
        expected = f"a {wanted.__name__} or None" if wanted else "None (it has no config)"
        raise ValueError(f"config for {name!r} must be {expected}; got {type(config).__name__}")
    if name == "fonts":
        if source_dir is not None:
            raise ValueError("FONTS is rendered from installed fonts and has no source_dir; use FontsConfig(font_dirs=...)")
        return _load_fonts(split, limit, config or FontsConfig(), data_dir, dtype, bool(progress))
    if name == "celeba":
        return _load_celeba(split, limit, config or CelebAConfig(), source_dir, data_dir, dtype, progress is not False)
    spec = _idx_datasets.SPECS[name]
    images, labels = _idx_datasets.load_split(spec, split, source_dir=source_dir, data_dir=data_dir)
    rows = _take(np.arange(labels.shape[0]), limit, name, split)
    return Dataset(
        name=name,
        split=split,
        images=_as_dtype(images[: rows.size, :, :, None], dtype),
        labels=labels[: rows.size],
        num_classes=spec.num_classes,
        class_names=spec.class_names,
    )


def _load_fonts(split, limit, config, data_dir, dtype, progress) -> Dataset:
    fonts = _fonts.build(config, data_dir=data_dir, progress=progress)
    rows = _take(fonts.split_rows(split), limit, "fonts", split)
    return Dataset(
        name="fonts",
        split=split,
        images=_as_dtype(_gather(fonts.images, rows)[..., None], dtype),
        labels=(rows % _fonts.NUM_CLASSES).astype(np.int32),
        num_classes=_fonts.NUM_CLASSES,
        font_ids=((rows // _fonts.NUM_CLASSES) % fonts.num_fonts).astype(np.int32),
        theta=np.asarray(fonts.theta[rows]),
        class_names=tuple(LETTERS),
    )


def _load_celeba(split, limit, config, source_dir, data_dir, dtype, progress) -> Dataset:
    built = _celeba.build(source_dir=source_dir, data_dir=data_dir, progress=progress)
    labels = built.labels(config.attribute)  # validates the attribute name before any copying
    rows = _take(built.split_rows(split, config.split), limit, "celeba", split)
    return Dataset(
        name="celeba",
        split=split,
        images=_as_dtype(_gather(built.images, rows), dtype),
        labels=labels[rows],
        num_classes=2,
        class_names=_celeba.class_names(config.attribute),
    )


def from_tfds(name: str, split: str, limit: int | None = None, **kwargs) -> Dataset:
    """The same :class:`Dataset` read from a prepared tensorflow-datasets dataset (no TensorFlow);
    see :func:`manifold_robustness.data.tfds_adapter.from_tfds`.  Imports tensorflow-datasets."""
    from manifold_robustness.data import tfds_adapter

    return tfds_adapter.from_tfds(name, split, limit, **kwargs)


def fonts_prototypes(config: FontsConfig | None = None, data_dir: str | None = None) -> np.ndarray:
    """float32[F, 10, H, W, 1] in [0, 1]: the glyphs the true FONTS manifold renders from."""
    fonts = _fonts.build(config or FontsConfig(), data_dir=data_dir)
    return fonts.prototypes[..., None].astype(np.float32) / np.float32(255.0)
