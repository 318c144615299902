"""Image-grid figures: what they draw, the PNG they write, and the restart picker."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from manifold_robustness.report import grids


def _images(n, h=6, w=5, c=1, seed=0):
    return np.random.default_rng(seed).uniform(0.2, 0.8, (n, h, w, c)).astype(np.float32)


def test_image_grid_figure_lays_out_images_row_by_row():
    import matplotlib

    backend = matplotlib.get_backend()
    imgs = _images(7)
    fig = grids.image_grid_figure(imgs, ncols=3, col_titles=["a", "b", "c"], title="t")
    assert matplotlib.get_backend() == backend  # building a figure must not switch the backend
    axes = fig.axes
    assert len(axes) == 9  # 3 rows x 3 columns, the last two empty
    shown = [ax.images[0].get_array() for ax in axes if ax.images]
    assert len(shown) == 7
    np.testing.assert_allclose(shown[4], imgs[4, ..., 0])
    assert [ax.get_title() for ax in axes[:3]] == ["a", "b", "c"]
    assert fig._suptitle.get_text() == "t"


def test_image_grid_figure_reads_uint8_as_fractions():
    imgs = np.full((2, 4, 4, 1), 255, np.uint8)
    fig = grids.image_grid_figure(imgs, ncols=2)
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), 1.0)


def test_save_image_grid_writes_png_of_figure_size(tmp_path):
    path = grids.save_image_grid(_images(20), tmp_path / "sub" / "grid.png", ncols=10, cell_inches=0.5)
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == (500, 100)  # 10 x 0.5 in wide, 2 x 0.5 in high, at 100 dpi


def test_image_grid_figure_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
        grids.image_grid_figure(np.zeros((3, 4, 4)), ncols=2)


def test_first_success_picks_first_successful_restart_else_restart_zero():
    r, b = 3, 4
    x = np.stack([np.full((b, 2, 2, 1), k, np.float32) for k in range(r)])  # restart k's images hold k
    success = np.array([[0, 0, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0]], bool)
    picked = grids.first_success(x, success)
    assert picked.shape == (b, 2, 2, 1)
    np.testing.assert_array_equal(picked[:, 0, 0, 0], [1, 2, 0, 0])
    with pytest.raises(ValueError, match="success"):
        grids.first_success(x, success[:, :2])


def test_attack_figure_rows_are_clean_adversarial_and_difference():
    clean = _images(4)
    adv = clean.copy()
    adv[1, 2, 3, 0] += 0.3
    adv[2] -= 0.1
    fig = grids.attack_figure(clean, adv, labels=[0, 1, 2, 3], predictions=[0, 4, 2, 3], class_names="ABCDE", title="x")
    axes = np.asarray(fig.axes).reshape(3, 4)
    np.testing.assert_allclose(axes[0, 2].images[0].get_array(), clean[2, ..., 0])
    np.testing.assert_allclose(axes[1, 1].images[0].get_array(), adv[1, ..., 0])
    delta = axes[2, 1].images[0]
    np.testing.assert_allclose(delta.get_array(), adv[1, ..., 0] - clean[1, ..., 0], atol=1e-6)
    lo, hi = delta.get_clim()  # one symmetric scale for every column: the largest |δ|
    assert hi == pytest.approx(0.3, abs=1e-5) and lo == -hi
    assert axes[2, 3].images[0].get_clim() == (lo, hi)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["clean", "adversarial", "δ (max 0.30)"]
    titles = [ax.get_title() for ax in axes[0]]
    assert titles == ["A → A", "B → E", "C → C", "D → D"]
    # the changed prediction is highlighted, the kept ones are not
    assert axes[0, 1].title.get_color() != axes[0, 0].title.get_color()


def test_attack_figure_checks_its_inputs():
    with pytest.raises(ValueError, match="one shape"):
        grids.attack_figure(_images(3), _images(2))
    with pytest.raises(ValueError, match="labels"):
        grids.attack_figure(_images(3), _images(3), labels=[0, 1])
