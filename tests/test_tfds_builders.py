"""The tfds builders write ArrayRecord and read back through tfds.data_source, without TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from manifold_robustness import data


def test_fonts_data_source_matches_arrays(font_dir, tmp_path):
    from manifold_robustness.data import tfds_builders

    cfg = data.FontsConfig(num_fonts=None, repetitions=3, test_repetitions=1, font_dirs=(str(font_dir),))
    for split, size in (("train", 160), ("test", 80)):
        source = tfds_builders.fonts_data_source(split, config=cfg, data_dir=tmp_path)
        arrays = data.load("fonts", split, config=cfg, data_dir=tmp_path, dtype=np.uint8)
        assert len(source) == size == len(arrays)
        for i in (0, 1, 9, size - 1):
            ex = source[i]
            np.testing.assert_array_equal(ex["image"], arrays.images[i])
            assert ex["image"].dtype == np.uint8
            assert ex["label"] == arrays.labels[i] and ex["font_id"] == arrays.font_ids[i]
            np.testing.assert_array_equal(ex["theta"], arrays.theta[i])
    assert list(tmp_path.glob("tfds/manifold_fonts/*/1.0.0/*.array_record*"))


def test_fashion_mnist_data_source_matches_arrays(small_fashion, tmp_path):
    from manifold_robustness.data import tfds_builders

    for split, size in (("train", 20), ("test", 10)):
        source = tfds_builders.fashion_mnist_data_source(split, source_dir=small_fashion, data_dir=tmp_path)
        arrays = data.load("fashion_mnist", split, source_dir=str(small_fashion), dtype=np.uint8)
        assert len(source) == size == len(arrays)
        for i in range(size):  # same examples in the same (file) order
            ex = source[i]
            assert ex["image"].dtype == np.uint8 and ex["image"].shape == (28, 28, 1)
            np.testing.assert_array_equal(ex["image"], arrays.images[i])
            assert ex["label"] == arrays.labels[i]
    assert source.dataset_info.features["label"].names[9] == "Ankle boot"
    assert list(tmp_path.glob("tfds/manifold_fashion_mnist/*/1.0.0/*.array_record*"))


def test_tfds_is_imported_lazily():
    code = (
        "import sys, manifold_robustness.data, manifold_robustness.data.celeba, manifold_robustness.data.idx_datasets, "
        "manifold_robustness.transforms; print('tensorflow_datasets' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]  # this checkout, whatever the editable install points to
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env).stdout
    assert out.strip() == "False"
