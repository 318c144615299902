"""The FONTS dataset: build, cache and load (paper §4; reference digest "original code" §2).

Each (font, letter) prototype gets ``repetitions`` random affine transforms θ drawn uniformly in
the difficulty's ranges, rendered by the true manifold decoder.  Rows are ordered
(repetition, font, letter) like the original, so the first N rows of the training split are
class-balanced whenever N is a multiple of 10.  Default split (paper): the first
``repetitions − test_repetitions`` repetitions train, the last ``test_repetitions`` test — same
fonts, new transforms.  ``split="font"`` instead holds out the last ``test_font_fraction`` of the
fonts: they appear only in the test repetitions, and the training fonts only in the training ones.

Which faces: ``selection="legible"`` (default) first removes the faces that
:mod:`~manifold_robustness.data.legibility` scores below ``min_readability`` (read by their
nearest letters on other faces) or ``min_survival`` (ink kept inside the frame under the
difficulty's transformations), then takes a seeded permutation of the rest, like the paper's
hand-cleaned Google Fonts; ``selection="random"`` skips the two rules (FONTS before they existed:
same cache entries, same images).

Only images (uint8) and θ (float32) are stored; label = row % 10 and font id = (row // 10) % F.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from manifold_robustness import claims, transforms
from manifold_robustness.data import cache, fontfaces, legibility
from manifold_robustness.manifolds import fonts as fonts_manifold

log = logging.getLogger(__name__)

NUM_CLASSES = len(fontfaces.LETTERS)
SPLITS = ("repetition", "font")
SELECTIONS = ("legible", "random")
_LEGIBLE_FIELDS = ("min_readability", "min_survival")  # read only by selection="legible"
_CHUNK = 8192


@dataclasses.dataclass(frozen=True)
class FontsConfig:
    """What FONTS to build.  Defaults are the paper's: 1000 fonts × 10 letters × 112 transforms,
    Hard ranges, 96 training and 16 test repetitions (paper §4)."""

    num_fonts: int | None = 1000  # None: every usable face on the machine
    repetitions: int = 112
    test_repetitions: int = 16
    split: str = "repetition"  # or "font": hold out fonts instead of transforms
    test_font_fraction: float = 0.1  # only for split="font"
    difficulty: str = "hard"  # "easy" | "moderate" | "hard"
    image_size: int = 28
    font_size: int = 21
    seed: int = 0
    font_dirs: tuple[str, ...] | None = None  # None: the system's fonts (fontconfig + usual folders)
    selection: str = "legible"  # or "random": every usable face, as before the legibility rules
    min_readability: float = 0.65
    min_survival: float = 0.95

    def __post_init__(self):
        if self.num_fonts is not None and self.num_fonts < 1:
            raise ValueError(f"num_fonts must be a positive integer or None (all fonts); got {self.num_fonts}")
        if not 1 <= self.test_repetitions < self.repetitions:
            raise ValueError(
                f"need 1 <= test_repetitions < repetitions; got test_repetitions={self.test_repetitions}, "
                f"repetitions={self.repetitions}"
            )
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {self.split!r}")
        if not 0.0 < self.test_font_fraction < 1.0:
            raise ValueError(f"test_font_fraction must be in (0, 1); got {self.test_font_fraction}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}; got {self.selection!r}")
        for name in _LEGIBLE_FIELDS:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a fraction in [0, 1]; got {getattr(self, name)}")
        if self.difficulty not in transforms.FONTS_RANGES:
            raise ValueError(f"difficulty must be one of {sorted(transforms.FONTS_RANGES)}; got {self.difficulty!r}")
        if self.font_size < 4 or self.image_size < 8:
            raise ValueError(f"image_size >= 8 and font_size >= 4 expected; got {self.image_size}, {self.font_size}")

    @property
    def ranges(self) -> transforms.TransformRanges:
        return transforms.FONTS_RANGES[self.difficulty]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["font_dirs"] = list(self.font_dirs) if self.font_dirs is not None else None
        return d

    def key_dict(self) -> dict:
        """What the cache key covers: everything that changes the images.  ``random`` leaves out the
        selection fields, so its entries are those built before the fields existed."""
        d = self.to_dict()
        if self.selection == "random":
            for name in ("selection", *_LEGIBLE_FIELDS):
                del d[name]
        else:
            d["legibility_version"] = legibility.VERSION
        return d


@dataclasses.dataclass(frozen=True)
class FontsData:
    """A built FONTS: ``images`` uint8[R·F·10, H, W] and ``theta`` float32[R·F·10, 6] (memory-mapped),
    ``prototypes`` uint8[F, 10, H, W], the face names, the build metadata, and its folder."""

    config: FontsConfig
    images: np.ndarray
    theta: np.ndarray
    prototypes: np.ndarray
    font_names: list[str]
    meta: dict
    path: Path

    @property
    def num_fonts(self) -> int:
        return self.prototypes.shape[0]

    @property
    def shortfall(self) -> str | None:
        """None when the build has the fonts its config asked for; else what is missing and what
        that does to an experiment (in words, for the user)."""
        wanted = self.config.num_fonts
        if wanted is None or self.num_fonts >= wanted:
            return None
        train, test = self.split_rows("train").size, self.split_rows("test").size
        rules = " that pass the legibility rules" if self.config.selection == "legible" else ""
        return (f"FONTS: only {self.num_fonts} usable font faces{rules} were found on this machine, but "
                f"{wanted} were asked for, so this FONTS has {self.num_fonts} fonts "
                f"({train} training and {test} test images instead of "
                f"{wanted * NUM_CLASSES * (self.config.repetitions - self.config.test_repetitions)} "
                f"and {wanted * NUM_CLASSES * self.config.test_repetitions}). Training sizes above "
                f"{train} cannot run, fewer fonts make the task easier than the paper's, and the "
                f"numbers are not comparable with the paper's. {fontfaces.install_hint()}")

    def split_rows(self, split: str) -> np.ndarray:
        """int64 row indices of ``split`` ("train" | "test") in dataset order."""
        if split not in ("train", "test"):
            raise ValueError(f"FONTS has splits 'train' and 'test'; got {split!r}")
        c, f = self.config, self.num_fonts
        block = f * NUM_CLASSES
        train_reps = c.repetitions - c.test_repetitions
        reps = np.arange(train_reps) if split == "train" else np.arange(train_reps, c.repetitions)
        in_block = np.arange(block)
        if c.split == "font":
            held_out = max(1, math.ceil(c.test_font_fraction * f))
            if held_out >= f:
                raise ValueError(f"split='font' needs at least 2 fonts; this build has {f}")
            font_of = in_block // NUM_CLASSES
            in_block = in_block[(font_of >= f - held_out) if split == "test" else (font_of < f - held_out)]
        return (reps[:, None] * block + in_block[None, :]).reshape(-1)


def _font_files(config: FontsConfig) -> list[str]:
    if config.font_dirs is None:
        return fontfaces.find_font_files()
    return fontfaces.find_font_files([Path(d).expanduser() for d in config.font_dirs])


def _legible(config: FontsConfig, faces, prototypes, report: fontfaces.DiscoveryReport):
    """The faces that pass both legibility rules (``report`` counts the others per rule) and
    their scores (``readability``, ``survival``), in the same order."""
    # a single face has no others to read it: the readability rule keeps it
    scores = {"readability": legibility.readability(prototypes) if len(faces) > 1 else np.ones(len(faces)),
              "survival": legibility.survival(prototypes, config.ranges)}
    cropped = scores["survival"] < config.min_survival
    illegible = ~cropped & (scores["readability"] < config.min_readability)
    keep = ~(cropped | illegible)
    for rule, mask in (("cropped", cropped), ("illegible", illegible)):
        if mask.any():
            report.dropped[rule] = int(mask.sum())
    report.kept = int(keep.sum())
    if not keep.any():
        raise fontfaces.NoUsableFontsError(
            f"No font face passes the legibility rules (min_readability {config.min_readability}, "
            f"min_survival {config.min_survival}; {report.summary()}). Lower them, use "
            f"selection='random', or install more fonts. {fontfaces.install_hint()}")
    kept = [f for f, k in zip(faces, keep) if k]
    return kept, prototypes[keep], {name: v[keep] for name, v in scores.items()}


def _select_fonts(config: FontsConfig, faces, prototypes):
    """Seeded permutation of the sorted faces, then the first ``num_fonts``."""
    order = np.asarray(jax.random.permutation(jax.random.key(config.seed), len(faces)))
    wanted = len(faces) if config.num_fonts is None else min(config.num_fonts, len(faces))
    order = order[:wanted]
    return [faces[i] for i in order], prototypes[order], order


@jax.jit
def _render_chunk(prototypes, rows, theta):
    num_fonts = prototypes.shape[0]
    classes = rows % NUM_CLASSES
    fonts = (rows // NUM_CLASSES) % num_fonts
    images = fonts_manifold.render(prototypes, fonts, classes, theta)
    return jnp.round(images[..., 0] * 255.0).astype(jnp.uint8)


def _write_images(path: Path, prototypes: np.ndarray, theta: np.ndarray, progress: bool) -> None:
    """Render every row chunk by chunk straight into a .npy file (no full array in memory)."""
    n, h, w = theta.shape[0], prototypes.shape[2], prototypes.shape[3]
    protos = jnp.asarray(prototypes)[..., None]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="render FONTS", unit="img", unit_scale=True)
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": (n, h, w)})
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            rows = np.arange(start, start + _CHUNK, dtype=np.int32)  # padded: one compiled shape
            th = np.zeros((_CHUNK, 6), np.float32)
            th[: stop - start] = theta[start:stop]
            out = np.asarray(_render_chunk(protos, rows, th))[: stop - start]
            fh.write(out.tobytes())
            if bar is not None:
                bar.update(stop - start)
    if bar is not None:
        bar.close()


def entry_path(config: FontsConfig, data_dir=None) -> tuple[Path, list[str]]:
    files = _font_files(config)
    key = cache.config_key({"dataset": "fonts", **config.key_dict(), "fonts": fontfaces.fingerprint(files)})
    return cache.data_dir(data_dir) / "fonts" / key, files


def build(config: FontsConfig = FontsConfig(), data_dir=None, progress: bool = False, verify: bool = True) -> FontsData:
    """Return FONTS for ``config``, from the cache when a valid entry exists, else built now.

    The cache key covers the whole config and a fingerprint of the installed font files, so a
    changed config or font set rebuilds; a corrupted entry is detected (checksums) and rebuilt.
    """
    path, files = entry_path(config, data_dir)
    built = _cached(config, path, verify)
    if built is not None:
        return built
    path.parent.mkdir(parents=True, exist_ok=True)
    # one builder per entry: another process building the same FONTS is waited for, then read
    with claims.wait(path.parent / f".{path.name}.building", poll=1.0):
        built = _cached(config, path, verify)
        return built if built is not None else _build(config, path, files, progress)


def _cached(config: FontsConfig, path: Path, verify: bool) -> FontsData | None:
    """The entry at ``path`` (None when there is none; a corrupt one is removed, logged)."""
    try:
        meta, arrays = cache.read_entry(path, verify=verify)
        return _as_data(config, meta, arrays, path)
    except FileNotFoundError:
        return None
    except cache.CorruptCacheError as err:
        log.warning("FONTS cache entry %s is corrupted (%s); rebuilding it.", path, err)
        cache.discard_entry(path)
        return None


def _build(config: FontsConfig, path: Path, files: list[str], progress: bool) -> FontsData:
    t0 = time.perf_counter()
    faces, prototypes, report = fontfaces.discover(files, config.image_size, config.font_size, progress=progress)
    scores = {}
    if config.selection == "legible":
        faces, prototypes, scores = _legible(config, faces, prototypes, report)
        log.info("FONTS legibility rules: %s", report.summary())
    faces, prototypes, order = _select_fonts(config, faces, prototypes)
    scores = {name: v[order] for name, v in scores.items()}
    n = config.repetitions * len(faces) * NUM_CLASSES
    theta = np.asarray(transforms.sample_theta(jax.random.key(config.seed + 1), n, config.ranges))
    with cache.atomic_entry(path) as tmp:
        np.save(tmp / "prototypes.npy", prototypes)
        np.save(tmp / "theta.npy", theta)
        _write_images(tmp / "images.npy", prototypes, theta, progress)
        rows = [dataclasses.asdict(f) | {"name": f.name} | {n: round(float(v[i]), 4) for n, v in scores.items()}
                for i, f in enumerate(faces)]
        (tmp / "fonts.json").write_text(json.dumps(rows, indent=1))
        cache.finish_entry(
            tmp,
            {
                "config": config.to_dict(),
                "discovery": dataclasses.asdict(report),
                "num_fonts": len(faces),
                "build_seconds": round(time.perf_counter() - t0, 2),
            },
        )
    log.info("FONTS built in %.1f s: %s", time.perf_counter() - t0, report.summary())
    meta, arrays = cache.read_entry(path, verify=False)
    return _as_data(config, meta, arrays, path)


def describe(config: FontsConfig, data_dir=None) -> str | None:
    """One sentence on which faces this config's FONTS holds and what removed the others, read
    from its cache entry (None when it is not built here: nothing is built to describe it)."""
    try:
        path, _ = entry_path(config, data_dir)
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    disc = meta.get("discovery", {})
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(disc.get("dropped", {}).items())) or "none"
    rules = (f"legibility rules readability >= {config.min_readability}, survival >= {config.min_survival}"
             if config.selection == "legible" else "selection 'random' (no legibility rules)")
    return (f"FONTS: {meta.get('num_fonts')} font faces used of {disc.get('kept')} usable "
            f"({disc.get('found')} found; dropped per rule: {dropped}; {rules}).")


class FontsShortfallWarning(UserWarning):
    """FONTS was built with fewer fonts than its config asked for (see ``FontsData.shortfall``)."""


def _as_data(config, meta, arrays, path) -> FontsData:
    names = [f["name"] for f in json.loads((path / "fonts.json").read_text())]
    built = FontsData(config, arrays["images"], arrays["theta"], np.asarray(arrays["prototypes"]), names, meta, path)
    if built.shortfall:  # on every load, cached or not: it changes what an experiment means
        warnings.warn(built.shortfall, FontsShortfallWarning, stacklevel=3)
    return built
