"""The legibility rules that choose FONTS' faces: scores on synthetic faces, the build's counts,
the old selection's cache entries, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_font
from manifold_robustness import cli, transforms
from manifold_robustness.data import FontsConfig, cache, fontfaces, fonts, legibility


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory):
    """Twelve plain faces (the same letters, side strokes of different widths), one whose patterns
    no other face shares, and one whose glyphs fill the whole frame."""
    d = tmp_path_factory.mktemp("mixed_fonts")
    for i in range(12):  # more than k = 10, so a plain letter's neighbours can all be right
        make_font(d / f"plain{i}.ttf", f"Plain{i}", variant=i)
    make_font(d / "scrambled.ttf", "Scrambled", glyphs="scrambled", variant=3)
    make_font(d / "huge.ttf", "Huge", scale=2.0)
    return d


def _config(folder, **kw):
    return FontsConfig(num_fonts=None, repetitions=3, test_repetitions=1, font_dirs=(str(folder),), **kw)


def test_scores_rank_plain_above_cropped_blank_and_unreadable_faces(mixed_dir):
    faces, protos, _ = fontfaces.discover(fontfaces.find_font_files([mixed_dir]))
    names = [f.family for f in faces] + ["Blank"]
    protos = np.concatenate([protos, np.zeros_like(protos[:1])])  # discovery would drop it as blank
    read = dict(zip(names, legibility.readability(protos)))
    kept = dict(zip(names, legibility.survival(protos, transforms.FONTS_RANGES["hard"])))
    default = FontsConfig()
    plain = [n for n in names if n.startswith("Plain")]
    assert min(read[n] for n in plain) >= default.min_readability > max(read["Scrambled"], read["Blank"])
    assert read["Blank"] == 0.0  # nothing to read
    assert min(kept[n] for n in plain) >= default.min_survival > kept["Huge"]
    assert kept["Blank"] == 0.0 and max(kept.values()) <= 1.0
    # the full frame loses ink to the Hard ranges' zoom and rotation, the Easy ranges keep more
    assert legibility.survival(protos, transforms.FONTS_RANGES["easy"])[names.index("Huge")] > kept["Huge"]


def test_a_face_that_only_resembles_itself_cannot_be_read():
    rng = np.random.default_rng(0)
    noise = (rng.random((5, 10, 28, 28)) * 255).astype(np.uint8)
    assert legibility.readability(noise).max() < 0.5  # chance is 0.1
    same = np.repeat(noise[:1], 5, axis=0)  # five copies of one face read each other perfectly
    np.testing.assert_array_equal(legibility.readability(same), 1.0)
    with pytest.raises(ValueError, match="needs >= 2 faces"):
        legibility.readability(noise[:1])


def test_readability_is_the_k_nearest_neighbour_score_however_the_neighbours_are_found():
    # enough faces (600 × 10 letters) that the search bounds each row by a strided sample of columns
    rng = np.random.default_rng(1)
    shapes = rng.random((10, 28, 28)) < 0.3  # ten letter shapes, each face a noisy copy of them
    protos = ((shapes[None] ^ (rng.random((600, 10, 28, 28)) < 0.25)) * 255).astype(np.uint8)
    protos[3, 4] = 0  # one blank letter
    assert 600 * 10 // legibility._SAMPLE > 1
    x, inked = legibility._features(protos)
    sim = x @ x.T
    face = np.repeat(np.arange(600), 10)
    sim[face[:, None] == face[None, :]] = -np.inf
    nearest = np.argsort(-sim, axis=1, kind="stable")[:, :7]  # the definition, by brute force
    right = (nearest % 10 == np.arange(6000)[:, None] % 10).mean(axis=1) * inked
    got = legibility.readability(protos, k=7)
    np.testing.assert_array_equal(got, right.reshape(600, 10).mean(axis=1))
    assert 0.2 < got.mean() < 1.0


def test_the_build_drops_faces_by_rule_and_says_how_many(mixed_dir, tmp_path, capsys):
    built = fonts.build(_config(mixed_dir), data_dir=tmp_path)
    disc = built.meta["discovery"]
    assert disc["dropped"] == {"illegible": 1, "cropped": 1} and disc["kept"] == built.num_fonts == 12
    rows = json.loads((built.path / "fonts.json").read_text())
    assert {r["family"] for r in rows} == {f"Plain{i}" for i in range(12)}
    assert all(r["readability"] >= 0.65 and r["survival"] >= 0.95 for r in rows)
    assert "dropped per rule: cropped 1, illegible 1" in fonts.describe(_config(mixed_dir), data_dir=tmp_path)
    assert fonts.describe(_config(mixed_dir, min_survival=0.5), data_dir=tmp_path) is None  # not built
    args = ["--num-fonts", "0", "--repetitions", "3", "--test-repetitions", "1", "--data-dir", str(tmp_path),
            "--font-dir", str(mixed_dir)]
    assert cli.main(["data", "build", *args]) == 0
    out = capsys.readouterr().out
    assert "cropped 1" in out and "illegible 1" in out and "legibility rules" in out
    assert cli.main(["data", "build", *args, "--selection", "random"]) == 0
    assert "14 fonts" in capsys.readouterr().out


def test_the_old_selection_keeps_its_cache_entries_and_the_new_one_has_its_own(mixed_dir):
    old, new = _config(mixed_dir, selection="random"), _config(mixed_dir)
    files = fontfaces.find_font_files([mixed_dir])
    before_the_rules = {k: v for k, v in old.to_dict().items() if k not in ("selection", "min_readability", "min_survival")}
    key = cache.config_key({"dataset": "fonts", **before_the_rules, "fonts": fontfaces.fingerprint(files)})
    assert fonts.entry_path(old)[0].name == key
    assert fonts.entry_path(new)[0].name != key
    assert fonts.entry_path(_config(mixed_dir, min_readability=0.7))[0] != fonts.entry_path(new)[0]


def test_bad_rules_are_refused_and_an_empty_pool_says_what_to_do(mixed_dir, tmp_path):
    with pytest.raises(ValueError, match="selection must be one of"):
        FontsConfig(selection="by hand")
    with pytest.raises(ValueError, match="min_survival is a fraction"):
        FontsConfig(min_survival=1.5)
    with pytest.raises(fontfaces.NoUsableFontsError, match="selection='random'"):
        fonts.build(_config(mixed_dir, min_readability=1.0, min_survival=1.0), data_dir=tmp_path)
