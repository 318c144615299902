"""Font discovery and FONTS prototypes: which installed faces can draw A–J, and how they look.

This is shell code (it reads font files).  The result is plain numpy: one 28×28 image per
(font, letter), glyph white on black in [0, 1], ink-centred, rendered at a nominal 21 px like the
paper (28 − 28/4, leaving room for the transformations).

Filter rules, each counted in :class:`DiscoveryReport` (FONTS in the paper used Google Fonts with
symbol and broken faces removed by hand; here the same is done by rule on the system's fonts):

* ``unreadable``     the file cannot be parsed or rendered (never a crash);
* ``bitmap_only``    no outline glyphs (no ``glyf``/``CFF`` table), so no 21 px rendering;
* ``symbol_cmap``    a Windows symbol character map: letters are not letters;
* ``color``          colour/emoji glyph tables (``COLR``, ``CBDT``, ``sbix``, ``SVG ``);
* ``symbol_name``    the family name says symbol, math, dingbat, icon, barcode, emoji, …;
* ``missing_letters`` the character map lacks one of A–J;
* ``blank``          a letter renders (almost) no ink;
* ``letters_alike``  two letters render nearly the same (placeholder glyphs, barcodes);
* ``duplicate``      all ten renderings equal an earlier face's (the same font installed twice).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

LETTERS = "ABCDEFGHIJ"
FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
DEFAULT_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
)
# The set-up installs the packages listed here; errors point people to it.
FONT_PACKAGES_FILE = "scripts/font-packages.txt"
SYMBOL_NAME = re.compile(
    r"symbol|math|dingbat|wingding|webding|icon|awesome|emoji|barcode|bar ?code|\bcode ?39\b|"
    r"\bean\b|\bupc\b|braille|ornament|fleuron|glyphicon|entypo|powerline|music|opensymbol|"
    r"\bcmex|\bcmsy|\bmsam|\bmsbm|\bstmary|\bwasy|redacted|blank",
    re.IGNORECASE,
)
MIN_INK = 4.0  # total ink (sum of [0, 1] pixels) below which a letter counts as blank
MIN_LETTER_DIFFERENCE = 0.0015  # mean |a − b| below which two letters count as the same glyph (E vs F of a thin face is ~0.005)


@dataclasses.dataclass(frozen=True)
class FontFace:
    """One usable face: ``path`` (and ``index`` inside a collection) plus its names."""

    path: str
    index: int
    family: str
    style: str

    @property
    def name(self) -> str:
        return f"{self.family} {self.style}".strip()

    @property
    def sort_key(self) -> tuple:
        return (self.family.lower(), self.style.lower(), os.path.basename(self.path), self.index)


@dataclasses.dataclass
class DiscoveryReport:
    """How many faces were found, kept, and dropped by which rule."""

    found: int = 0
    kept: int = 0
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        rules = ", ".join(f"{k}: {v}" for k, v in sorted(self.dropped.items())) or "none"
        return f"{self.found} font faces found, {self.kept} kept; dropped by rule: {rules}"


class NoUsableFontsError(RuntimeError):
    pass


def install_hint() -> str:
    return (
        "Install Latin font packages, e.g. `sudo apt-get install fonts-aenigma fonts-dejavu-core "
        "fonts-liberation fonts-texgyre` (the full list the set-up uses is in "
        f"{FONT_PACKAGES_FILE}; `make run` installs it when run as root), or point "
        "MANIFOLD_ROBUSTNESS_FONT_DIRS at a folder of .ttf/.otf files."
    )


def font_dirs() -> list[Path]:
    """Folders scanned when fontconfig is not available (``MANIFOLD_ROBUSTNESS_FONT_DIRS`` first)."""
    extra = os.environ.get("MANIFOLD_ROBUSTNESS_FONT_DIRS", "")
    dirs = [Path(d).expanduser() for d in extra.split(os.pathsep) if d]
    return dirs + [Path(d).expanduser() for d in DEFAULT_FONT_DIRS]


def find_font_files(dirs: list[Path] | None = None) -> list[str]:
    """All outline font files below ``dirs`` (default: :func:`font_dirs`, plus fontconfig's list)."""
    files: set[str] = set()
    if dirs is None:
        dirs = font_dirs()
        if shutil.which("fc-list") and not os.environ.get("MANIFOLD_ROBUSTNESS_FONT_DIRS"):
            try:
                out = subprocess.run(
                    ["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, timeout=60, check=True
                ).stdout
                files.update(line.strip() for line in out.splitlines() if line.strip())
            except (OSError, subprocess.SubprocessError):
                pass
    for d in dirs:
        if d.is_dir():
            for root, _, names in os.walk(d):
                files.update(os.path.join(root, n) for n in names)
    return sorted(f for f in files if f.lower().endswith(FONT_SUFFIXES) and os.path.isfile(f))


def fingerprint(files: list[str]) -> str:
    """A cheap digest of the font files (paths, sizes, mtimes): a changed font set rebuilds FONTS."""
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        h.update(f"{f}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


def _names(tt) -> tuple[str, str]:
    name = tt["name"] if "name" in tt else None

    def get(*ids):
        for i in ids:
            rec = name.getDebugName(i) if name is not None else None
            if rec:
                return rec
        return ""

    return get(16, 1), get(17, 2)


def _inspect(path: str, index: int) -> tuple[FontFace | None, str | None]:
    """Read one face's tables. Returns (face, None) or (None, rule that rejects it)."""
    from fontTools.ttLib import TTFont

    try:
        tt = TTFont(path, fontNumber=index, lazy=True)
        family, style = _names(tt)
        if not any(t in tt for t in ("glyf", "CFF ", "CFF2")):
            return None, "bitmap_only"
        # Only which characters are mapped matters, not the glyphs' names: placeholder names spare
        # decoding the 'post' and CFF tables for them (half of the inspection's time).
        tt.setGlyphOrder([f"g{i}" for i in range(tt["maxp"].numGlyphs)])
        cmap_table = tt["cmap"]
        if any(t.platformID == 3 and t.platEncID == 0 for t in cmap_table.tables):
            return None, "symbol_cmap"
        if any(t in tt for t in ("COLR", "CBDT", "sbix", "SVG ")):
            return None, "color"
        if SYMBOL_NAME.search(family) or SYMBOL_NAME.search(os.path.basename(path)):
            return None, "symbol_name"
        cmap = tt.getBestCmap() or {}
        if any(ord(ch) not in cmap for ch in LETTERS):
            return None, "missing_letters"
    except Exception:  # noqa: BLE001 - any broken font file is skipped and counted
        return None, "unreadable"
    return FontFace(path=path, index=index, family=family or Path(path).stem, style=style), None


def _faces_in(path: str) -> int:
    if path.lower().endswith((".ttc", ".otc")):
        try:
            from fontTools.ttLib import TTCollection

            return len(TTCollection(path, lazy=True).fonts)
        except Exception:  # noqa: BLE001
            return 1
    return 1


def _render_letter(font, ch: str, canvas: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("L", (canvas, canvas), 0)
    ImageDraw.Draw(img).text((canvas // 3, canvas // 3), ch, font=font, fill=255)
    return np.asarray(img, dtype=np.uint8)


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the ink, inclusive; None for a blank image.  From the rows
    and columns that hold any ink: listing every inked pixel (``np.nonzero``, 47 against 14 us a
    call) took ~1.7 s of the ~10 s discovery of 1840 faces."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _centre(ink: np.ndarray, size: int) -> np.ndarray:
    """Crop the ink bounding box of a large rendering and paste it centred into size×size."""
    out = np.zeros((size, size), np.uint8)
    box = _ink_box(ink)
    if box is None:
        return out
    r0, r1, c0, c1 = box
    crop = ink[r0 : r1 + 1, c0 : c1 + 1][:size, :size]
    h, w = crop.shape
    top, left = (size - h) // 2, (size - w) // 2
    out[top : top + h, left : left + w] = crop
    return out


def render_prototypes(face: FontFace, image_size: int = 28, font_size: int = 21) -> np.ndarray:
    """uint8[10, image_size, image_size]: A–J white on black, ink-centred.

    The nominal size is ``font_size`` px; a face whose letters would not fit into the canvas with a
    one-pixel border is rendered smaller (the same size for all ten letters of the face).
    """
    from PIL import ImageFont

    canvas = 4 * image_size
    size = font_size
    for _ in range(4):
        font = ImageFont.truetype(face.path, size=size, index=face.index)
        big = [_render_letter(font, ch, canvas) for ch in LETTERS]
        extent = 0
        for r0, r1, c0, c1 in filter(None, map(_ink_box, big)):
            extent = max(extent, r1 - r0 + 1, c1 - c0 + 1)
        if extent <= image_size - 2 or size <= 6:
            break
        size = max(6, int(size * (image_size - 2) / extent))
    return np.stack([_centre(ink, image_size) for ink in big])


def _render_rule(protos: np.ndarray) -> str | None:
    x = protos.astype(np.float32) / 255.0
    if (x.reshape(len(LETTERS), -1).sum(axis=1) < MIN_INK).any():
        return "blank"
    flat = x.reshape(len(LETTERS), -1)
    diff = np.abs(flat[:, None, :] - flat[None, :, :]).mean(axis=-1)
    diff[np.diag_indices(len(LETTERS))] = np.inf
    if diff.min() < MIN_LETTER_DIFFERENCE:
        return "letters_alike"
    return None


def discover(
    files: list[str] | None = None, image_size: int = 28, font_size: int = 21, progress: bool = False
) -> tuple[list[FontFace], np.ndarray, DiscoveryReport]:
    """Inspect, render and filter every face.

    Returns (faces sorted by a stable key, uint8[F, 10, H, W] prototypes in the same order, report).
    Raises :class:`NoUsableFontsError` (naming the packages to install) when nothing is usable.
    """
    if files is None:
        files = find_font_files()
    report = DiscoveryReport()
    dropped: Counter[str] = Counter()
    candidates: list[FontFace] = []
    iterator = [(f, i) for f in files for i in range(_faces_in(f))]
    report.found = len(iterator)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="fonts", unit="face")
    rendered: list[tuple[FontFace, np.ndarray]] = []
    for path, index in iterator:
        face, rule = _inspect(path, index)
        if face is None:
            dropped[rule] += 1
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                protos = render_prototypes(face, image_size, font_size)
        except Exception:  # noqa: BLE001 - broken glyph programs, unsupported formats, ...
            dropped["unreadable"] += 1
            continue
        rule = _render_rule(protos)
        if rule is not None:
            dropped[rule] += 1
            continue
        candidates.append(face)
        rendered.append((face, protos))
    rendered.sort(key=lambda fp: fp[0].sort_key)
    seen: set[bytes] = set()
    faces, protos = [], []
    for face, p in rendered:
        digest = hashlib.sha256(p.tobytes()).digest()
        if digest in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(digest)
        faces.append(face)
        protos.append(p)
    report.kept = len(faces)
    report.dropped = dict(dropped)
    if not faces:
        raise NoUsableFontsError(f"No usable fonts found ({report.summary()}). {install_hint()}")
    return faces, np.stack(protos), report
