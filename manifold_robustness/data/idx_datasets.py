"""Fashion-MNIST and EMNIST from their official gzip idx files (paper §6.1).

Each dataset is described by an :class:`IdxSpec` (file names, expected content, where the files
are looked for) and read by :func:`load_split`, which returns the split as uint8 arrays after
checking the content:

* every file has a well-formed idx header that matches its length (:mod:`.idx`);
* images are uint8[N, 28, 28], labels uint8[N], the same N;
* labels lie in the dataset's range; and where the size of a split is known, N matches it (and the
  classes are balanced for Fashion-MNIST).

Content is checked instead of the .gz checksums because Debian's ``dataset-fashion-mnist``
re-compressed the files: their .gz bytes differ from upstream while the decompressed arrays are
the same.

EMNIST stores each image transposed relative to MNIST (written column by column), so its glyphs
appear mirrored and rotated; :func:`load_split` transposes them back so that characters are
upright.  EMNIST *letters* labels are 1..26 in the files (there is no class 0); they are mapped to
0..25 = a..z.
"""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from manifold_robustness.data import cache, idx, sources

FASHION_MNIST_ENV = "MANIFOLD_ROBUSTNESS_FASHION_MNIST"
EMNIST_ENV = "MANIFOLD_ROBUSTNESS_EMNIST"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SHAPE = (28, 28)


class DatasetContentError(ValueError):
    """A dataset file is readable but its content is not what the dataset should contain."""


@dataclasses.dataclass(frozen=True)
class IdxSpec:
    """An idx dataset: its files per split and what their content must be.

    ``sizes``: expected examples per split (None: not checked); ``balanced``: every class has
    ``size / num_classes`` examples; ``label_offset``: file label = our label + offset;
    ``transposed``: images are stored transposed (EMNIST).
    """

    name: str
    title: str
    files: Mapping[str, tuple[str, str]]  # split -> (images file, labels file)
    num_classes: int
    class_names: tuple[str, ...]
    env_var: str
    default_dir: Callable[[str | None], Path]  # data_dir override -> default source folder
    how_to_get: str
    sizes: Mapping[str, int] | None = None
    balanced: bool = False
    label_offset: int = 0
    transposed: bool = False

    @property
    def all_files(self) -> tuple[str, ...]:
        return tuple(f for split in ("train", "test") for f in self.files[split])


def _emnist_files(variant: str) -> dict[str, tuple[str, str]]:
    return {
        split: (f"emnist-{variant}-{split}-images-idx3-ubyte.gz", f"emnist-{variant}-{split}-labels-idx1-ubyte.gz")
        for split in ("train", "test")
    }


def _emnist_how_to_get(tfds_name: str) -> str:
    return (
        f"On a machine with internet, tensorflow-datasets can fetch them: tfds.load('{tfds_name}') downloads "
        "EMNIST's gzip.zip and extracts it under ~/tensorflow_datasets/downloads/extracted/; the gzip/ folder "
        "inside holds these files (preparing the tfds dataset itself needs TensorFlow). Once tfds has prepared "
        f"it, manifold_robustness.data.from_tfds(...) can also read the prepared dataset directly."
    )


FASHION_MNIST = IdxSpec(
    name="fashion_mnist",
    title="Fashion-MNIST",
    files={
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    },
    num_classes=10,
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    env_var=FASHION_MNIST_ENV,
    default_dir=lambda data_dir: DEBIAN_FASHION_MNIST,
    how_to_get=(
        f"On Debian or Ubuntu, `apt-get install dataset-fashion-mnist` installs them in {DEBIAN_FASHION_MNIST}. "
        "On a machine with internet, tensorflow-datasets can fetch them: tfds.load('fashion_mnist') keeps the "
        "four .gz downloads under ~/tensorflow_datasets/downloads/; copy them here under the names above."
    ),
    sizes={"train": 60_000, "test": 10_000},
    balanced=True,
)

EMNIST_DIGITS = IdxSpec(
    name="emnist",
    title="EMNIST digits",
    files=_emnist_files("digits"),
    num_classes=10,
    class_names=tuple(string.digits),
    env_var=EMNIST_ENV,
    default_dir=lambda data_dir: cache.data_dir(data_dir) / "emnist",
    how_to_get=_emnist_how_to_get("emnist/digits"),
    sizes={"train": 240_000, "test": 40_000},  # paper §6.1
    transposed=True,
)

# The letters split sizes are not checked: published summaries disagree with each other.
EMNIST_LETTERS = IdxSpec(
    name="emnist_letters",
    title="EMNIST letters",
    files=_emnist_files("letters"),
    num_classes=26,
    class_names=tuple(string.ascii_lowercase),
    env_var=EMNIST_ENV,
    default_dir=lambda data_dir: cache.data_dir(data_dir) / "emnist",
    how_to_get=_emnist_how_to_get("emnist/letters"),
    label_offset=1,
    transposed=True,
)

SPECS: dict[str, IdxSpec] = {s.name: s for s in (FASHION_MNIST, EMNIST_DIGITS, EMNIST_LETTERS)}


def source_folder(spec: IdxSpec, source_dir=None, data_dir=None) -> Path:
    """The folder the files of ``spec`` are read from (argument, env var, default)."""
    return sources.resolve(source_dir, spec.env_var, lambda: spec.default_dir(data_dir))


def check_files(spec: IdxSpec, folder: Path) -> None:
    """Raise :class:`~.sources.MissingDatasetFilesError` listing the files of ``spec`` absent from ``folder``."""
    missing = [name for name in spec.all_files if not (folder / name).is_file()]
    if missing:
        raise sources.missing_files_error(spec.title, folder, missing, spec.env_var, spec.how_to_get)


def check_content(spec: IdxSpec, split: str, images: np.ndarray, labels: np.ndarray, where: str) -> None:
    """Raise :class:`DatasetContentError` unless raw file arrays fit ``spec`` (before any mapping)."""
    hint = "the file may be damaged or belong to another dataset"
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DatasetContentError(f"{where}: expected uint8 images [N, 28, 28], got {images.dtype}{list(images.shape)}; {hint}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetContentError(f"{where}: expected uint8 labels [N], got {labels.dtype}{list(labels.shape)}; {hint}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetContentError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels; {hint}")
    expected = None if spec.sizes is None else spec.sizes[split]
    if expected is not None and labels.shape[0] != expected:
        raise DatasetContentError(f"{where}: {labels.shape[0]} examples, expected {expected} in {spec.title} {split}; {hint}")
    low, high = spec.label_offset, spec.label_offset + spec.num_classes - 1
    if labels.size and (labels.min() < low or labels.max() > high):
        raise DatasetContentError(
            f"{where}: labels span {labels.min()}..{labels.max()}, expected {low}..{high} for {spec.title}; {hint}"
        )
    if spec.balanced:
        counts = np.bincount(labels - low, minlength=spec.num_classes)
        if not np.all(counts == labels.shape[0] // spec.num_classes):
            raise DatasetContentError(
                f"{where}: class counts {counts.tolist()}, expected {labels.shape[0] // spec.num_classes} per class; {hint}"
            )


def load_split(spec: IdxSpec, split: str, source_dir=None, data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """Read ``split`` of ``spec`` from its source folder.

    Returns (images uint8[N, 28, 28] upright, labels int32[N] in [0, num_classes)).  Raises
    :class:`~.sources.MissingDatasetFilesError` when files are missing, :class:`~.idx.IdxFormatError`
    on a malformed file and :class:`DatasetContentError` on unexpected content.
    """
    if split not in spec.files:
        raise ValueError(f"{spec.title} has splits 'train' and 'test'; got {split!r}")
    folder = source_folder(spec, source_dir, data_dir)
    check_files(spec, folder)
    image_file, label_file = (folder / name for name in spec.files[split])
    images, labels = idx.read(image_file), idx.read(label_file)
    check_content(spec, split, images, labels, where=f"{image_file.name} / {label_file.name} in {folder}")
    if spec.transposed:
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    return images, (labels.astype(np.int32) - spec.label_offset)
