"""Shared fixtures: synthetic font files (fontTools), small FONTS builds and idx dataset folders in temporary folders."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

# Keep tests off the user's real cache.
os.environ.setdefault("MANIFOLD_ROBUSTNESS_DATA", str(Path(__file__).resolve().parent.parent / ".pytest_data"))

# The suite is compile-bound: it compiles about 3900 programs, most of them run a few times on tiny
# inputs, and XLA's backend compile took 458 of the 891 s summed over the tests (2026-12-06, 2 CPU
# cores).  Tests check what the programs compute, not how fast, so they compile with XLA's
# optimisations off: the compile then took 269 s, and running the programs ~60 s more (pytest
# 458 s -> 392 s).  The few fixtures that train for long turn them on again
# (:func:`full_optimisation`).  Set in the environment, so the suite's subprocesses (command lines,
# notebooks, the installed wheel) compile the same way; ``JAX_DISABLE_MOST_OPTIMIZATIONS=0 make
# test`` runs everything fully optimised, and the suite passes either way.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
_UNOPTIMISED = os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"].lower() in ("1", "true", "t", "yes", "y", "on")

# Unoptimised, most of a compile is XLA's CPU fusion emitters (its default code generator): with
# its older emitters the suite's programs compiled ~3x faster and ran up to 2x slower (a tiny CNN's
# regular-AT epoch: compile 2.2 against 6-7 s, run 3.0 against 1.4 s), and the suite took 620
# instead of 728 s (2 cores, AVX2, 2026-12-06).  XLA aborts the process on a flag it does not know,
# so the flag is tried first in a subprocess (~1.5 s, once: pytest-xdist's workers inherit the
# environment), in case a newer jaxlib dropped it.  Fully optimised runs keep the default emitters:
# they are how the library runs for its users.
FAST_COMPILE_FLAG = "--xla_cpu_use_fusion_emitters=false"


def _xla_accepts(flags: str) -> bool:
    import subprocess
    import sys

    probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices()"], capture_output=True,
                           env={**os.environ, "XLA_FLAGS": flags}, timeout=120)
    return probe.returncode == 0


if (_UNOPTIMISED and "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", "")
        and "MANIFOLD_ROBUSTNESS_TESTS_XLA_PROBED" not in os.environ):
    os.environ["MANIFOLD_ROBUSTNESS_TESTS_XLA_PROBED"] = "1"  # the workers need not ask again
    _flags = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAG}".strip()
    if _xla_accepts(_flags):
        os.environ["XLA_FLAGS"] = _flags

# Many tests compile the same programs (an experiment resumed or sharded compiles what the uninterrupted
# one did): JAX's persistent compilation cache makes the repeats cheap.
import jax  # noqa: E402

# The folder is spelled exactly as the command line spells it in a subprocess (``cli.use_compilation_cache``
# resolves the data directory): JAX's cache key hashes the compile options, and those carry a path
# under the cache folder as a string, so ``tests/../.pytest_data`` and ``.pytest_data`` would keep two
# caches that never share a program.
jax.config.update("jax_compilation_cache_dir", str(Path(os.environ["MANIFOLD_ROBUSTNESS_DATA"]).resolve() / "jax_cache"))
# Every program, however quick to compile: the runner tests and the installed-wheel test run the
# same tiny grids several times, and many of their programs compile in well under a second.
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
# JAX read the variable when it was first imported, which a plugin may have done before this file
jax.config.update("jax_disable_most_optimizations", _UNOPTIMISED)


# The order in which `make test` hands out the heavy files: longest first (seconds summed per
# file, cold cache, 2 workers on 2 CPU cores (AVX2), 2026-12-06, in brackets), after the file that
# builds the small FONTS that most files need; the second worker starts on a file that needs none.
# Each file goes to whichever worker is free (--dist loadfile; --no-loadscope-reorder, or xdist
# orders files by their number of tests instead).  The suite is CPU-bound, so the order moves the
# wall time little: a long file that starts last mostly runs alone on both cores instead of
# leaving one idle.
HEAVY_FIRST = ("test_store_integrity.py", "test_runner_datasets.py",  # [65, 137]
               "test_vaegan.py", "test_runner.py", "test_adversarial_training.py",  # [116, 111, 92]
               "test_attacks.py", "test_projection.py", "test_training.py", "test_models.py",  # [80, 68, 55, 53]
               "test_notebooks.py", "test_distributed.py", "test_eval_attacks.py", "test_install.py",  # [46, 44, 31, 30]
               "test_manifolds.py", "test_fonts.py", "test_report.py", "test_parallel.py",  # [20, 18, 15, 13]
               "test_legibility.py")  # [12; the rest under 6]


@contextlib.contextmanager
def full_optimisation():
    """Compile with XLA's optimisations on inside the block (for fixtures whose programs run long
    enough to repay them: training a CNN for several epochs); the suite's setting after it.  The
    emitters stay those of ``XLA_FLAGS`` (read once per process), the older ones in ``make test``."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", before)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


@pytest.fixture(autouse=True)
def _no_user_dataset_folders(monkeypatch):
    """Tests choose their dataset source folders themselves; the user's settings must not leak in."""
    for var in ("MANIFOLD_ROBUSTNESS_FASHION_MNIST", "MANIFOLD_ROBUSTNESS_EMNIST", "MANIFOLD_ROBUSTNESS_CELEBA"):
        monkeypatch.delenv(var, raising=False)


def make_font(path: Path, family: str, glyphs: str = "distinct", symbol_cmap: bool = False, variant: int = 0,
              scale: float = 1.0) -> Path:
    """Write a tiny TrueType font whose A–J are rectangles patterns.

    glyphs: "distinct" (a different pattern per letter, the same in every face: letters other
    faces read), "scrambled" (patterns that also depend on ``variant``: no other face reads them),
    "same" (all letters one shape), "empty" (no contours), or "partial" (only A–E in the character
    map).  ``variant`` changes every letter's side stroke, so faces with different variants render
    differently; ``scale`` multiplies the glyphs' size (the renderer shrinks a face to fit, so a
    large one fills the frame).
    """
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    letters = "ABCDEFGHIJ"
    mapped = letters[:5] if glyphs == "partial" else letters
    names = [".notdef"] + [f"g{c}" for c in mapped]
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder(names)
    cmap = {ord(c): f"g{c}" for c in mapped}
    fb.setupCharacterMap(cmap)

    def draw(k: int | None):
        pen = TTGlyphPen(None)
        if k is None or glyphs == "empty":
            return pen.glyph()
        bits = k if glyphs != "same" else 5
        # a 3x3 grid of blocks switched on by the bits of (k + 1) * 37, plus a side stroke
        code = ((bits + 1) * 37 + (variant * 101 if glyphs == "scrambled" else 0)) % 512 | 1

        def box(x0, y0, x1, y1):
            x0, y0, x1, y1 = (round(v * scale) for v in (x0, y0, x1, y1))
            pen.moveTo((x0, y0)); pen.lineTo((x0, y1)); pen.lineTo((x1, y1)); pen.lineTo((x1, y0)); pen.closePath()

        for cell in range(9):
            if code >> cell & 1:
                x, y = (cell % 3) * 200 + 50, (cell // 3) * 200 + 50
                box(x, y, x + 180, y + 180)
        box(0, 0, 30 + 5 * variant, 700 - 10 * variant)
        return pen.glyph()

    fb.setupGlyf({n: draw(None if n == ".notdef" else letters.index(n[1])) for n in names})
    fb.setupHorizontalMetrics({n: (700, 0) for n in names})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": family, "styleName": "Regular"})
    fb.setupOS2()
    fb.setupPost()
    if symbol_cmap:
        from fontTools.ttLib.tables._c_m_a_p import cmap_format_4

        sub = cmap_format_4(4)
        sub.platformID, sub.platEncID, sub.language = 3, 0, 0
        sub.cmap = dict(cmap)
        fb.font["cmap"].tables.append(sub)
    fb.save(str(path))
    return path


@pytest.fixture(scope="session")
def font_dir(tmp_path_factory) -> Path:
    """A folder with 8 good synthetic faces and one of each kind the filter must reject."""
    d = tmp_path_factory.mktemp("fonts")
    for i in range(8):
        make_font(d / f"good{i}.ttf", f"Good{i}", variant=i)
    make_font(d / "copy_of_good0.ttf", "Good0 Copy", variant=0)  # renders like good0.ttf
    (d / "broken.ttf").write_bytes(b"this is not a font" * 10)
    make_font(d / "symbolcmap.ttf", "Plain", symbol_cmap=True)
    make_font(d / "mathface.ttf", "Fancy Math")
    make_font(d / "same.ttf", "Same", glyphs="same")
    make_font(d / "empty.ttf", "Empty", glyphs="empty")
    make_font(d / "partial.ttf", "Partial", glyphs="partial")
    return d


@pytest.fixture(scope="session")
def small_fonts():
    """A small FONTS from the machine's own fonts: 100 fonts x 10 letters x (10 train + 2 test) reps."""
    from manifold_robustness import data

    return data.FontsConfig(num_fonts=100, repetitions=12, test_repetitions=2)


def write_fashion_like(folder: Path, sizes: dict[str, int], num_classes: int = 10) -> Path:
    """Write Fashion-MNIST's four gzip idx files into ``folder``: labels i % num_classes (balanced
    when sizes are multiples of num_classes); image i carries i in pixels (0, 0), (0, 1) and its
    label as the grey level of a central square."""
    from manifold_robustness.data import idx

    folder.mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        n = sizes[split]
        labels = (np.arange(n) % num_classes).astype(np.uint8)
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0], images[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
        images[:, 10:18, 10:18] = (labels * 25 + 5)[:, None, None]
        idx.write(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        idx.write(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture()
def small_fashion(tmp_path, monkeypatch) -> Path:
    """A 20/10-example Fashion-MNIST folder, with the expected split sizes patched to match."""
    import dataclasses

    from manifold_robustness.data import idx_datasets

    sizes = {"train": 20, "test": 10}
    monkeypatch.setitem(idx_datasets.SPECS, "fashion_mnist", dataclasses.replace(idx_datasets.FASHION_MNIST, sizes=sizes))
    return write_fashion_like(tmp_path / "fashion", sizes)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory, worker_id) -> Path:
    """A folder common to every xdist worker of this run (this session's own without xdist): what
    a session fixture builds there under a claim (:func:`claims.wait`) is built once per run."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


@pytest.fixture(scope="session")
def trained_cnn(small_fonts, shared_dir):
    """A CNN trained 6 epochs on 5000 small-FONTS images (~25-30 % test error) and 200 test
    examples as an attack batch with the FONTS context.  Trained once per run: the first worker
    trains into a shared checkpoint folder, the others wait for it and resume the finished run
    (the trainer's own resume, which restores the last epoch and trains no further)."""
    import jax
    import jax.numpy as jnp

    from manifold_robustness import claims, data, models, training

    train = data.load("fonts", "train", limit=5000, config=small_fonts, dtype=np.uint8)
    test = data.load("fonts", "test", limit=200, config=small_fonts)
    clf, _ = models.create("cnn", (28, 28, 1), 10, jax.random.key(0))
    with claims.wait(shared_dir / "trained_cnn.claim"), full_optimisation():
        result = training.train(clf, "normal", train, config=training.TrainConfig(epochs=6), progress=False,
                                checkpoint_dir=shared_dir / "trained_cnn")
    batch = {
        "image": jnp.asarray(test.images), "label": jnp.asarray(test.labels),
        "theta": jnp.asarray(test.theta), "font_id": jnp.asarray(test.font_ids),
    }
    context = {"prototypes": jnp.asarray(data.fonts_prototypes(small_fonts))}
    return clf, result.variables_for(0), batch, context


def forced_devices_env(count: int) -> dict:
    """This environment for a subprocess with ``count`` CPU devices.  The flag is added to any
    ``XLA_FLAGS`` already set (e.g. ``--xla_cpu_max_isa=AVX2``), so the subprocess compiles for
    the same CPU features as the tests around it."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()
    return {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}


REPO = Path(__file__).resolve().parent.parent
# What a fresh clone does not have: environments, caches, build outputs, results.
_NOT_IN_A_CLONE = (".git", ".venv", ".stamps", ".pytest_data", ".pytest_cache", ".hypothesis", "build", "results",
                   "outputs", "__pycache__", "*.egg-info", ".whl")


@pytest.fixture(scope="session")
def clean_checkout(tmp_path_factory) -> Path:
    """A copy of this checkout (uncommitted changes included) without environments, caches or build
    outputs, as a fresh clone has it: installs build from it, not from the working tree, so no stale
    ``build/`` files reach a wheel."""
    import shutil

    dest = tmp_path_factory.mktemp("checkout") / "manifold-robustness"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*_NOT_IN_A_CLONE), symlinks=True)
    return dest


def assert_decisions_agree(success, logits, labels, rtol: float = 1e-4):
    """``success`` (bool[..., B], judged inside one program) equals "the classifier is wrong"
    judged from ``logits`` (float[..., B, K], computed by another program), except where the
    margin between the label's logit and the best other one is within rounding of 0: two programs
    that round differently may decide such a tie either way, on any CPU.  Returns the number of
    decisions compared."""
    import jax.numpy as jnp

    logits = jnp.asarray(logits)
    label_logit = jnp.take_along_axis(logits, jnp.broadcast_to(labels, logits.shape[:-1])[..., None], -1)[..., 0]
    others = jnp.where(jnp.arange(logits.shape[-1]) == jnp.asarray(labels)[..., None], -jnp.inf, logits)
    margin = np.asarray(label_logit - others.max(-1))
    clear = np.abs(margin) > rtol * float(jnp.abs(logits).max())
    np.testing.assert_array_equal(np.asarray(success)[clear], (margin < 0)[clear])
    return int(clear.sum())


def assert_nearer(got, want, wrong, within: float, label=None) -> float:
    """``got`` lies within ``within`` of the way from ``want`` to ``wrong`` (mean absolute
    differences): the tolerance for two differently compiled programs that must compute the same
    thing, taken from the answer a real bug would give (the other seed's model, another class's
    model) rather than from float bits one CPU happens to reproduce.  Returns the fraction."""
    own = float(np.mean(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))
    other = float(np.mean(np.abs(np.asarray(wrong, np.float64) - np.asarray(want, np.float64))))
    assert own < within * other, (label, own, other)
    return own / other


def write_emnist_like(folder: Path, sizes: dict[str, int]) -> Path:
    """EMNIST digits' four gzip idx files in ``folder``, with the content of
    :func:`write_fashion_like` (labels i % 10, a grey square by label), each image stored
    transposed as NIST ships them."""
    from manifold_robustness.data import idx

    fashion = write_fashion_like(folder / ".upright", sizes)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = idx.read(fashion / f"{prefix}-images-idx3-ubyte.gz")
        idx.write(folder / f"emnist-digits-{split}-images-idx3-ubyte.gz", images.transpose(0, 2, 1))
        idx.write(folder / f"emnist-digits-{split}-labels-idx1-ubyte.gz", idx.read(fashion / f"{prefix}-labels-idx1-ubyte.gz"))
    return folder


CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def celeba_grey(i: int) -> int:
    """The grey level of image ``i``'s square in :func:`write_celeba_like` (encodes the row)."""
    return 10 + (12 * i) % 230


def celeba_attribute_text(names: list[str], rows: list[tuple[str, list[int]]]) -> str:
    """list_attr_celeba.txt's layout: count, names, then '000001.jpg -1  1 ...' (values 2 wide)."""
    lines = [str(len(rows)), " ".join(names) + " "]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in values) for name, values in rows]
    return "\n".join(lines) + "\n"


def write_celeba_like(folder: Path, partition, male) -> Path:
    """CelebA's official files for ``len(partition)`` aligned 178×218 JPEGs (``partition``: 0
    train, 1 val, 2 test per image; ``male``: ±1 per image): a white 8-pixel frame (cropped away),
    a grey square encoding the row with a red upper-left quarter, and the attribute and partition
    files."""
    from PIL import Image

    images = folder / "img_align_celeba"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, part in enumerate(partition):
        img = np.zeros((218, 178, 3), np.uint8)
        img[:8], img[-8:], img[:, :8], img[:, -8:] = 255, 255, 255, 255
        img[60:160, 40:140] = celeba_grey(i)
        img[60:110, 40:90] = (255, 0, 0)
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(img).save(images / name, quality=95)
        values = [int(v) for v in rng.choice([-1, 1], size=len(CELEBA_ATTRIBUTES))]
        values[CELEBA_ATTRIBUTES.index("Male")] = int(male[i])
        rows.append((name, values))
    (folder / "list_attr_celeba.txt").write_text(celeba_attribute_text(CELEBA_ATTRIBUTES, rows))
    (folder / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for (n, _), p in zip(rows, partition)))
    return folder
