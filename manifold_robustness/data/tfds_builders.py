"""tensorflow-datasets builders: the ecosystem's front door to our datasets.

Each builder writes ArrayRecord files that ``tfds.data_source`` reads back with random access and
no TensorFlow.  Images are stored as ``tfds.features.Tensor(uint8)`` (``features.Image`` needs
TensorFlow to encode PNGs).  This module imports tensorflow_datasets at import time, so import it
lazily: the GPU image does not ship tfds, and nothing else in the package needs it.

>>> from manifold_robustness.data import tfds_builders
>>> source = tfds_builders.fonts_data_source("train", config=FontsConfig(num_fonts=20, repetitions=4, test_repetitions=1))
>>> source[0]["image"].shape   # (28, 28, 1) uint8
>>> tfds_builders.fashion_mnist_data_source("test")[0]["label"]   # from Debian's idx files
"""

from __future__ import annotations

import dataclasses

import numpy as np

try:
    import tensorflow_datasets as tfds
except ImportError as err:  # pragma: no cover - depends on the machine
    raise ImportError(
        "manifold_robustness.data.tfds_builders needs tensorflow-datasets (`pip install tensorflow-datasets`); "
        "the array loaders in manifold_robustness.data work without it."
    ) from err

from manifold_robustness.data import cache, idx_datasets
from manifold_robustness.data import fonts as fonts_lib
from manifold_robustness.data.fontfaces import LETTERS


@dataclasses.dataclass(eq=False)
class ManifoldFontsConfig(tfds.core.BuilderConfig):
    fonts: fonts_lib.FontsConfig = dataclasses.field(default_factory=fonts_lib.FontsConfig)
    fonts_data_dir: str | None = None


def _config_for(config: fonts_lib.FontsConfig, data_dir) -> ManifoldFontsConfig:
    key = cache.config_key(config.to_dict())
    return ManifoldFontsConfig(name=f"c{key}", description=str(config), fonts=config, fonts_data_dir=data_dir)


class ManifoldFonts(tfds.core.GeneratorBasedBuilder):
    """FONTS (letters A–J, affine-warped glyphs of installed fonts) with its manifold coordinates."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Rendered from the machine's fonts; see manifold_robustness.data.fonts."}
    BUILDER_CONFIGS = [ManifoldFontsConfig(name="paper", description="1000 fonts x 10 letters x 112 transforms")]

    def _info(self):
        size = self.builder_config.fonts.image_size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(size, size, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(names=list(LETTERS)),
                    "font_id": tfds.features.Scalar(dtype=np.int32),
                    "theta": tfds.features.Tensor(shape=(6,), dtype=np.float32),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # keep the dataset order: its prefixes are class-balanced
            description="FONTS from Stutz et al. (CVPR 2019), rendered by manifold_robustness.",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is downloaded: FONTS is rendered from local fonts
        built = fonts_lib.build(self.builder_config.fonts, data_dir=self.builder_config.fonts_data_dir)
        return {split: self._generate_examples(built, split) for split in ("train", "test")}

    def _generate_examples(self, built: fonts_lib.FontsData, split: str):
        for row in built.split_rows(split):
            row = int(row)
            yield row, {
                "image": np.asarray(built.images[row])[..., None],
                "label": row % fonts_lib.NUM_CLASSES,
                "font_id": (row // fonts_lib.NUM_CLASSES) % built.num_fonts,
                "theta": np.asarray(built.theta[row]),
            }


def fonts_builder(config: fonts_lib.FontsConfig = fonts_lib.FontsConfig(), data_dir=None) -> ManifoldFonts:
    """The tfds builder for ``config``; tfds files go to ``<data dir>/tfds``."""
    root = cache.data_dir(data_dir)
    return ManifoldFonts(config=_config_for(config, data_dir), data_dir=str(root / "tfds"))


def fonts_data_source(split: str, config: fonts_lib.FontsConfig = fonts_lib.FontsConfig(), data_dir=None):
    """Prepare (once) and open ``split`` as a random-access ``tfds`` data source, without TensorFlow."""
    builder = fonts_builder(config, data_dir)
    builder.download_and_prepare(file_format="array_record")
    return tfds.data_source(
        "manifold_fonts",
        split=split,
        data_dir=builder.data_dir_root if hasattr(builder, "data_dir_root") else str(cache.data_dir(data_dir) / "tfds"),
        builder_kwargs={"config": builder.builder_config},
        download=False,
    )


@dataclasses.dataclass(eq=False)
class ManifoldFashionMnistConfig(tfds.core.BuilderConfig):
    source_dir: str | None = None  # the idx files' folder (None: $MANIFOLD_ROBUSTNESS_FASHION_MNIST or Debian's)


class ManifoldFashionMnist(tfds.core.GeneratorBasedBuilder):
    """Fashion-MNIST from local idx files (Debian's ``dataset-fashion-mnist`` by default), in file order.

    Named apart from tfds's own ``fashion_mnist``, which downloads; this one never does.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Read from local idx files with manifold_robustness.data.idx_datasets."}
    BUILDER_CONFIGS = [ManifoldFashionMnistConfig(name="default", description="Fashion-MNIST from local idx files")]

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(*idx_datasets.IMAGE_SHAPE, 1), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(names=list(idx_datasets.FASHION_MNIST.class_names)),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # keep the files' order, so prefixes match data.load(..., limit=N)
            description="Fashion-MNIST (Xiao et al. 2017), 28x28 grey, 10 classes, read from local idx files.",
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is downloaded: the idx files are local
        return {split: self._generate_examples(split) for split in ("train", "test")}

    def _generate_examples(self, split: str):
        spec = idx_datasets.SPECS["fashion_mnist"]
        images, labels = idx_datasets.load_split(spec, split, source_dir=self.builder_config.source_dir)
        for i in range(labels.shape[0]):
            yield i, {"image": images[i][..., None], "label": int(labels[i])}


def fashion_mnist_builder(source_dir=None, data_dir=None) -> ManifoldFashionMnist:
    """The tfds builder for the idx files in ``source_dir`` (resolved now: argument, env var, Debian's
    folder); a config per folder and file content, so changed files are prepared anew."""
    spec = idx_datasets.SPECS["fashion_mnist"]
    folder = idx_datasets.source_folder(spec, source_dir, data_dir)
    idx_datasets.check_files(spec, folder)
    files = {name: cache.file_crc32(folder / name) for name in spec.all_files}
    key = cache.config_key({"dataset": "fashion_mnist", "files": files})
    config = ManifoldFashionMnistConfig(name=f"c{key}", description=f"Fashion-MNIST from {folder}", source_dir=str(folder))
    return ManifoldFashionMnist(config=config, data_dir=str(cache.data_dir(data_dir) / "tfds"))


def fashion_mnist_data_source(split: str, source_dir=None, data_dir=None):
    """Prepare (once) and open ``split`` of Fashion-MNIST as a random-access tfds data source, without TensorFlow.

    Each example: {"image": uint8[28, 28, 1], "label": int64 in 0..9}, in the idx files' order.
    """
    builder = fashion_mnist_builder(source_dir, data_dir)
    builder.download_and_prepare(file_format="array_record")
    return tfds.data_source(
        "manifold_fashion_mnist",
        split=split,
        data_dir=str(cache.data_dir(data_dir) / "tfds"),
        builder_kwargs={"config": builder.builder_config},
        download=False,
    )
