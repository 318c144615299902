"""FONTS: discovery filter, prototypes, build determinism, cache, corruption, splits, data API."""

from __future__ import annotations

import json

import numpy as np
import pytest

from manifold_robustness import data
from manifold_robustness.data import cache, fontfaces, fonts
from manifold_robustness.manifolds import fonts as true_manifold
from manifold_robustness import transforms as T


@pytest.fixture()
def small_config(font_dir):
    return data.FontsConfig(num_fonts=None, repetitions=5, test_repetitions=2, font_dirs=(str(font_dir),))


def test_discovery_filters_each_rule(font_dir):
    faces, protos, report = fontfaces.discover(fontfaces.find_font_files([font_dir]))
    assert report.found == 15
    assert report.kept == len(faces) == 8
    assert report.dropped == {
        "unreadable": 1, "symbol_cmap": 1, "symbol_name": 1, "letters_alike": 1,
        "blank": 1, "missing_letters": 1, "duplicate": 1,
    }
    assert sorted(f.family for f in faces) == [f"Good{i}" for i in range(8)]
    assert protos.shape == (8, 10, 28, 28) and protos.dtype == np.uint8


def test_prototypes_are_centred_white_on_black(font_dir):
    face = fontfaces.FontFace(str(font_dir / "good3.ttf"), 0, "Good3", "Regular")
    protos = fontfaces.render_prototypes(face).astype(np.float32) / 255
    assert protos.max() == 1.0 and protos[:, 0, :].max() == 0.0 and protos[:, :, 0].max() == 0.0  # border dark
    for p in protos:
        rows, cols = np.nonzero(p > 0.5)
        assert abs((rows.min() + rows.max()) / 2 - 13.5) <= 1.0
        assert abs((cols.min() + cols.max()) / 2 - 13.5) <= 1.0


def test_no_usable_fonts_names_packages(tmp_path):
    cfg = data.FontsConfig(num_fonts=None, repetitions=3, test_repetitions=1, font_dirs=(str(tmp_path),))
    with pytest.raises(fontfaces.NoUsableFontsError, match="apt-get install fonts-"):
        fonts.build(cfg, data_dir=tmp_path / "data")


def test_fewer_fonts_than_asked_for_says_what_it_does(small_config, tmp_path, capsys):
    from manifold_robustness import cli

    cfg = data.FontsConfig(**{**small_config.to_dict(), "num_fonts": 20, "font_dirs": small_config.font_dirs})
    for _ in range(2):  # built, then from the cache: the warning comes with every load
        with pytest.warns(fonts.FontsShortfallWarning, match=r"only 8 usable font faces .* 20 were asked for"):
            built = fonts.build(cfg, data_dir=tmp_path)
    assert built.num_fonts == 8 and "Training sizes above 240 cannot run" in built.shortfall
    assert fonts.build(small_config, data_dir=tmp_path).shortfall is None  # num_fonts=None: all there are
    args = ["--num-fonts", "20", "--repetitions", "5", "--test-repetitions", "2", "--data-dir", str(tmp_path),
            "--font-dir", small_config.font_dirs[0]]
    assert cli.main(["data", "build", *args]) == 0
    assert "warning: FONTS: only 8 usable font faces" in capsys.readouterr().err


def test_build_is_deterministic_and_cached(small_config, tmp_path, monkeypatch):
    a = fonts.build(small_config, data_dir=tmp_path / "a")
    b = fonts.build(small_config, data_dir=tmp_path / "b")
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.images.shape == (5 * 8 * 10, 28, 28)
    other_seed = fonts.build(
        data.FontsConfig(**{**small_config.to_dict(), "seed": 1, "font_dirs": small_config.font_dirs}), data_dir=tmp_path / "a"
    )
    assert not np.array_equal(other_seed.theta, a.theta)
    # The second call with the same config is served from the cache: nothing is rendered.
    monkeypatch.setattr(fontfaces, "discover", lambda *a, **k: pytest.fail("rebuilt instead of reading the cache"))
    again = fonts.build(small_config, data_dir=tmp_path / "a")
    assert again.path == a.path
    np.testing.assert_array_equal(again.images, a.images)


def test_images_are_renderings_of_theta(small_config, tmp_path):
    built = fonts.build(small_config, data_dir=tmp_path)
    rows = np.array([0, 7, 93, 211, 399])
    protos = built.prototypes[..., None].astype(np.float32) / 255
    rendered = true_manifold.render(protos, (rows // 10) % built.num_fonts, rows % 10, built.theta[rows])
    np.testing.assert_allclose(np.asarray(rendered)[..., 0], built.images[rows] / 255.0, atol=1 / 255 + 1e-6)
    low, high = map(np.asarray, small_config.ranges.arrays())
    assert (built.theta >= low).all() and (built.theta <= high).all()


def test_corrupted_cache_is_detected_and_rebuilt(small_config, tmp_path, caplog):
    built = fonts.build(small_config, data_dir=tmp_path)
    original = np.array(built.images)
    path = built.path / "images.npy"
    del built
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(cache.CorruptCacheError):
        cache.read_entry(path.parent)
    rebuilt = fonts.build(small_config, data_dir=tmp_path)
    np.testing.assert_array_equal(rebuilt.images, original)
    assert "corrupted" in caplog.text
    # a truncated file is caught as well
    path.write_bytes(path.read_bytes()[:1000])
    np.testing.assert_array_equal(fonts.build(small_config, data_dir=tmp_path).images, original)


def test_a_checked_file_is_checked_again_only_when_it_changed(small_config, tmp_path, monkeypatch):
    path = fonts.build(small_config, data_dir=tmp_path).path
    cache.read_entry(path)  # checks every file and remembers their stat
    checked = []
    real = cache.file_crc32
    monkeypatch.setattr(cache, "file_crc32", lambda p, *a: checked.append(p.name) or real(p, *a))
    cache.read_entry(path)
    assert checked == []  # unchanged since the last check
    raw = bytearray((path / "images.npy").read_bytes())
    raw[-100] ^= 0xFF  # same size, rewritten
    (path / "images.npy").write_bytes(bytes(raw))
    with pytest.raises(cache.CorruptCacheError, match="checksum"):
        cache.read_entry(path)
    assert checked == ["images.npy"]


def test_interrupted_build_leaves_no_entry(small_config, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fonts, "_write_images", boom)
    with pytest.raises(KeyboardInterrupt):
        fonts.build(small_config, data_dir=tmp_path)
    path, _ = fonts.entry_path(small_config, tmp_path)
    assert not path.exists() and not list(path.parent.glob(".*tmp*"))
    monkeypatch.undo()
    assert fonts.build(small_config, data_dir=tmp_path).images.shape[0] == 400


def test_load_api(small_config, tmp_path):
    train = data.load("fonts", "train", config=small_config, data_dir=tmp_path)
    test = data.load("fonts", "test", config=small_config, data_dir=tmp_path)
    assert len(train) == 3 * 80 and len(test) == 2 * 80
    assert train.images.dtype == np.float32 and train.images.shape[1:] == (28, 28, 1)
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0
    assert train.labels.dtype == np.int32 and train.num_classes == 10
    # same fonts, new transforms
    assert set(train.font_ids) == set(test.font_ids)
    first = data.load("fonts", "train", limit=30, config=small_config, data_dir=tmp_path)
    np.testing.assert_array_equal(first.images, train.images[:30])
    assert np.bincount(first.labels, minlength=10).tolist() == [3] * 10  # class-balanced prefix
    raw = data.load("fonts", "train", limit=10, config=small_config, data_dir=tmp_path, dtype=np.uint8)
    assert raw.images.dtype == np.uint8
    np.testing.assert_allclose(raw.images / 255.0, first.images[:10], atol=1e-7)
    protos = data.fonts_prototypes(small_config, data_dir=tmp_path)
    assert protos.shape == (8, 10, 28, 28, 1)


def test_font_holdout_split(font_dir, tmp_path):
    cfg = data.FontsConfig(num_fonts=None, repetitions=4, test_repetitions=1, split="font",
                           test_font_fraction=0.25, font_dirs=(str(font_dir),))
    train = data.load("fonts", "train", config=cfg, data_dir=tmp_path)
    test = data.load("fonts", "test", config=cfg, data_dir=tmp_path)
    assert set(train.font_ids) == set(range(6)) and set(test.font_ids) == {6, 7}
    assert len(train) == 3 * 6 * 10 and len(test) == 1 * 2 * 10


def test_bad_inputs(small_config, tmp_path):
    with pytest.raises(ValueError, match="known datasets: fonts"):
        data.load("mnist", "train")
    with pytest.raises(ValueError, match="limit=100000 is larger than .* 240"):
        data.load("fonts", "train", limit=100000, config=small_config, data_dir=tmp_path)
    with pytest.raises(ValueError, match="'train' and 'test'"):
        data.load("fonts", "validation", config=small_config, data_dir=tmp_path)
    with pytest.raises(ValueError, match="test_repetitions"):
        data.FontsConfig(repetitions=4, test_repetitions=4)
    with pytest.raises(ValueError, match="difficulty"):
        data.FontsConfig(difficulty="impossible")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="MANIFOLD_ROBUSTNESS_DATA"):
        cache.data_dir(blocker / "sub")
    with pytest.raises(ValueError, match="fonts, classes"):
        true_manifold.render(np.zeros((2, 10, 28, 28), np.float32), [0], [0], np.zeros((1, 6), np.float32))


def test_render_identity_returns_prototypes_by_index():
    protos = np.random.default_rng(0).uniform(size=(3, 10, 28, 28, 1)).astype(np.float32)
    out = true_manifold.render(protos, np.array([2, 0, 1]), np.array([9, 4, 0]), T.identity_theta(3))
    np.testing.assert_allclose(out, protos[[2, 0, 1], [9, 4, 0]], atol=1e-5)


def test_cli_build_info_samples(small_config, tmp_path, capsys):
    from manifold_robustness import cli

    args = ["--num-fonts", "0", "--repetitions", "5", "--test-repetitions", "2", "--data-dir", str(tmp_path),
        "--font-dir", small_config.font_dirs[0]]
    assert cli.main(["data", "build", *args]) == 0
    out = capsys.readouterr().out
    assert "8 fonts, 400 images" in out and "duplicate 1" in out
    assert cli.main(["data", "info", *args]) == 0
    assert json.loads(capsys.readouterr().out.split("\ndata directory")[0])["num_fonts"] == 8
    png = tmp_path / "grid.png"
    assert cli.main(["data", "samples", *args, "--rows", "2", "--out", str(png)]) == 0
    assert png.stat().st_size > 1000
    assert cli.main(["data", "build", "--repetitions", "2", "--test-repetitions", "2"]) == 2


def test_concurrent_builders_keep_the_first_complete_entry(tmp_path):
    final = tmp_path / "entry"
    with cache.atomic_entry(final) as a:
        np.save(a / "x.npy", np.arange(3))
        cache.finish_entry(a, {"who": "first"})
    with cache.atomic_entry(final) as b:  # a second process finishing the same key later
        np.save(b / "x.npy", np.arange(3))
        cache.finish_entry(b, {"who": "second"})
    meta, arrays = cache.read_entry(final)
    assert meta["who"] == "first" and arrays["x"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]  # no temporary folders left behind


def test_a_second_builder_waits_for_the_first_and_reads_its_entry(small_config, tmp_path, monkeypatch):
    import threading

    calls = []
    real = fonts._build
    monkeypatch.setattr(fonts, "_build", lambda *a: calls.append(1) or real(*a))
    results = []
    threads = [threading.Thread(target=lambda: results.append(fonts.build(small_config, data_dir=tmp_path)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 2  # built once, the other waited and read it
    np.testing.assert_array_equal(results[0].images, results[1].images)
