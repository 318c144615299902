"""tensorflow-datasets builders: the ecosystem's front door to our datasets.

Each builder writes ArrayRecord files that ``tfds.data_source`` reads back with random access and
no TensorFlow.  Images are stored as ``tfds.features.Tensor(uint8)`` (``features.Image`` needs
TensorFlow to encode PNGs).  This module imports tensorflow_datasets at import time, so import it
lazily: the GPU image does not ship tfds, and nothing else in the package needs it.

>>> from manifold_robustness.data import tfds_builders
>>> source = tfds_builders.fonts_data_source("train", config=FontsConfig(num_fonts=20, repetitions=4, test_repetitions=1))
>>> source[0]["image"].shape   # (28, 28, 1) uint8
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

from manifold_robustness.data import cache
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
