"""Read a prepared tensorflow-datasets dataset into our :class:`~manifold_robustness.data.Dataset`.

For users whose Fashion-MNIST, EMNIST or CelebA already live in a tfds data directory: the
examples are read with ``tfds.data_source`` (random access to ArrayRecord files, no TensorFlow)
and converted to our conventions, so the arrays match :func:`manifold_robustness.data.load`:

* EMNIST images are transposed upright and letters labels 1..26 become 0..25;
* CelebA images are resized and cropped to 56×48 (:func:`.celeba.resize_and_crop`), the label is
  one attribute ("Male"), train = tfds "train+validation" and test = tfds "test" (the official
  partition; the original code's "first90" split cannot be rebuilt from tfds's order).

The *order* of examples is tfds's, which for these datasets is not the order of the original
files (tfds shuffles while preparing), so ``limit=N`` picks other examples than ``load`` does.

tensorflow-datasets is imported when this module is imported; import it lazily (the package's
``data.from_tfds`` does).  Nothing is downloaded: a dataset that is not prepared as ArrayRecord
raises a FileNotFoundError that says how to prepare it.
"""

from __future__ import annotations

import numpy as np

try:
    import tensorflow_datasets as tfds
except ImportError as err:  # pragma: no cover - depends on the machine
    raise ImportError(
        "manifold_robustness.data.from_tfds needs tensorflow-datasets (`pip install tensorflow-datasets`); "
        "manifold_robustness.data.load reads the original files without it."
    ) from err

from manifold_robustness import data as data_api
from manifold_robustness.data import celeba, idx_datasets, sources

TFDS_NAMES = {"fashion_mnist": "fashion_mnist", "emnist": "emnist/digits", "emnist_letters": "emnist/letters", "celeba": "celeb_a"}


def open_source(name: str, split: str, tfds_data_dir: str | None = None):
    """The tfds data source of our dataset ``name`` and ``split``; never downloads."""
    tfds_name = TFDS_NAMES[name]
    tfds_split = {"train": "train+validation", "test": "test"}[split] if name == "celeba" else split
    try:
        return tfds.data_source(tfds_name, split=tfds_split, data_dir=tfds_data_dir, download=False)
    except (NotImplementedError, FileNotFoundError, AssertionError) as err:
        raise sources.MissingDatasetFilesError(
            f"tensorflow-datasets has no ArrayRecord copy of {tfds_name!r} in "
            f"{tfds_data_dir or 'its default data directory (~/tensorflow_datasets or $TFDS_DATA_DIR)'} ({err}).\n"
            f"On a machine with internet, prepare it once with "
            f"tfds.builder('{tfds_name}').download_and_prepare(file_format='array_record') "
            "(a dataset prepared by plain tfds.load is stored as TFRecord, which needs TensorFlow to read), "
            "or use manifold_robustness.data.load with the original files."
        ) from err


def _convert(name: str, example: dict, attribute: str) -> tuple[np.ndarray, int]:
    """One tfds example → (image uint8[H, W, C] in our layout, label)."""
    image = np.asarray(example["image"])
    if name == "celeba":
        attrs = example["attributes"]
        if attribute not in attrs:
            raise ValueError(f"unknown CelebA attribute {attribute!r}; tfds celeb_a has: {', '.join(sorted(attrs))}")
        return celeba.resize_and_crop(image), int(bool(np.asarray(attrs[attribute])))
    spec = idx_datasets.SPECS[name]
    if image.shape != (*idx_datasets.IMAGE_SHAPE, 1) or image.dtype != np.uint8:
        raise ValueError(f"{spec.title} from tfds: expected uint8 images [28, 28, 1], got {image.dtype}{list(image.shape)}")
    if spec.transposed:
        image = np.ascontiguousarray(image.transpose(1, 0, 2))
    label = int(np.asarray(example["label"])) - spec.label_offset
    if not 0 <= label < spec.num_classes:
        raise ValueError(
            f"{spec.title} from tfds: label {label + spec.label_offset} is outside "
            f"{spec.label_offset}..{spec.label_offset + spec.num_classes - 1}"
        )
    return image, label


def from_tfds(
    name: str,
    split: str,
    limit: int | None = None,
    *,
    tfds_data_dir: str | None = None,
    config: celeba.CelebAConfig | None = None,
    dtype=np.float32,
    progress: bool = False,
) -> "data_api.Dataset":
    """Our dataset ``name`` ("fashion_mnist" | "emnist" | "emnist_letters" | "celeba"), ``split``
    ("train" | "test"), read from tensorflow-datasets.

    images: float32[N, H, W, C] in [0, 1] (uint8 with ``dtype=np.uint8``), labels: int32[N];
    ``limit=N`` keeps the first N examples in tfds's order.
    """
    if name not in TFDS_NAMES:
        raise ValueError(f"from_tfds reads {', '.join(TFDS_NAMES)}; got {name!r}")
    if split not in data_api.SPLITS:
        raise ValueError(f"{name} has splits 'train' and 'test'; got {split!r}")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.uint8)):
        raise ValueError(f"dtype must be float32 or uint8; got {np.dtype(dtype)}")
    config = config or celeba.CelebAConfig()
    if name == "celeba" and config.split != "official":
        raise ValueError("from_tfds('celeba') supports only CelebAConfig(split='official'): tfds does not keep the file order")
    source = open_source(name, split, tfds_data_dir)
    count = data_api._take(np.arange(len(source)), limit, name, split).size
    indices = range(count)
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"read {TFDS_NAMES[name]} {split}", unit="img", unit_scale=True)
    pairs = [_convert(name, source[i], config.attribute) for i in indices]
    shape = celeba.IMAGE_SHAPE if name == "celeba" else (*idx_datasets.IMAGE_SHAPE, 1)
    images = np.stack([p[0] for p in pairs]) if pairs else np.zeros((0, *shape), np.uint8)
    labels = np.array([p[1] for p in pairs], dtype=np.int32)
    if name == "celeba":
        num_classes, names = 2, celeba.class_names(config.attribute)
    else:
        num_classes, names = idx_datasets.SPECS[name].num_classes, idx_datasets.SPECS[name].class_names
    return data_api.Dataset(
        name=name,
        split=split,
        images=data_api._as_dtype(images, dtype),
        labels=labels,
        num_classes=num_classes,
        class_names=names,
    )
