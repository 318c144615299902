"""The tfds builder writes ArrayRecord and reads back through tfds.data_source, without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

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


def test_tfds_is_imported_lazily():
    code = "import sys, manifold_robustness.data, manifold_robustness.transforms; print('tensorflow_datasets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
