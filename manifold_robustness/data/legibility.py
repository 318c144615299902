"""How legible a font face is, measured: the two rules that choose FONTS' faces.

The paper's FONTS used 1000 Google Fonts after removing symbol, script, outline and broken faces
by hand.  The system's fonts include many more decorative faces (``fonts-aenigma`` alone brings
hundreds), so FONTS removes them by two scores, each computed from the faces' prototypes only:

* **readability** — how well the letters are read by a classifier that never saw the face: every
  untransformed letter is classified by its ``k`` nearest letters among *all other* faces (cosine
  similarity of the mean-centred, 2×2-pooled images), and the face scores the fraction of those
  neighbours that carry the right letter, averaged over its letters.  Symbols, pictures, outlines
  and scripts score low; plain faces near 1.
* **survival** — how much of each glyph stays inside the frame under the dataset's
  transformations: every ink pixel is mapped through ``samples`` transformations drawn from the
  difficulty's ranges (the renderer's matrix, inverted), and the face scores the ink fraction that
  lands inside the image, averaged over letters and transformations.  Faces whose glyphs fill the
  canvas lose their edges to the scale and rotation ranges ('C' cut at the border).

Both are numpy float64 on a fixed set of transformations, so the same fonts give the same faces
on any CPU (no trained model whose float trajectory depends on the machine).
"""

from __future__ import annotations

import jax
import numpy as np

from manifold_robustness import transforms

__all__ = ["VERSION", "readability", "survival"]

VERSION = 1  # in FONTS' cache key: bump it when a score changes, so no build mixes two versions

_CHUNK = 1024  # query rows per similarity block (1024 × 18k float64 ≈ 150 MB)
_SAMPLE = 2048  # columns whose k-th best similarity bounds a row's k-th best from below


def _features(prototypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64[F·K, D]: each letter 2×2-pooled, mean-centred and of unit norm (zero for a letter
    without ink), and bool[F·K]: which letters have ink."""
    f, k, h, w = prototypes.shape
    x = prototypes.astype(np.float64) / 255.0
    x = x[:, :, : h - h % 2, : w - w % 2].reshape(f * k, h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    x = x.reshape(f * k, -1)
    x -= x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0), norm[:, 0] > 0


def readability(prototypes: np.ndarray, k: int = 10) -> np.ndarray:
    """float64[F] in [0, 1]: the leave-one-face-out ``k``-nearest-neighbour score of each face.

    prototypes: uint8[F, K, H, W] (font, letter, image).  Needs at least two faces.  Each other
    face has one image of the letter, so ``k`` is at most F − 1 (a set of identical plain faces
    scores 1 however few there are).
    """
    f, letters = prototypes.shape[:2]
    if f < 2:
        raise ValueError(f"readability compares a face with the others and needs >= 2 faces; got {f}")
    x, inked = _features(prototypes)
    n = f * letters
    label = np.tile(np.arange(letters), f)
    k = min(k, f - 1)
    # The k-th best similarity among a strided sample of the columns is a lower bound on a row's
    # k-th best, so the row's k nearest are among the few columns at or above it: sorting those
    # few is exact and twice as fast as selecting among all ~18k (ties: the lower column first).
    stride = max(1, n // _SAMPLE)
    if len(range(0, n, stride)) < k + letters:  # too few columns left after the own face's
        stride = 1
    right = np.empty(n)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        sim = x[start:stop] @ x.T
        own = (np.arange(start, stop) // letters * letters)[:, None] + np.arange(letters)
        np.put_along_axis(sim, own, -np.inf, axis=1)  # the face's own letters are not neighbours
        sample = sim[:, ::stride]
        floor = np.partition(sample, sample.shape[1] - k, axis=1)[:, sample.shape[1] - k]
        r, c = np.nonzero(sim >= floor[:, None])
        order = np.lexsort((c, -sim[r, c], r))  # by row, then most similar first
        r, c = r[order], c[order]
        nearest = np.arange(r.size) - np.searchsorted(r, r) < k  # the first k of each row
        hits = label[c[nearest]] == label[start:stop][r[nearest]]
        right[start:stop] = np.bincount(r[nearest], weights=hits, minlength=stop - start) / k
    right[~inked] = 0.0  # a blank letter is read by nobody (its neighbours would be arbitrary)
    return right.reshape(f, letters).mean(axis=1)


def survival(prototypes: np.ndarray, ranges: transforms.TransformRanges, samples: int = 64,
             seed: int = 0) -> np.ndarray:
    """float64[F] in [0, 1]: the mean ink fraction of each face's glyphs inside the frame after
    ``samples`` transformations drawn uniformly from ``ranges`` (fixed by ``seed``).

    The renderer maps output pixels to input pixels by the matrix A (:mod:`transforms`); an input
    ink pixel p lands at A⁻¹(p − t) in the output, and counts as kept when that lies within half a
    pixel of the image.
    """
    f, letters, h, w = prototypes.shape
    if h != w:
        raise ValueError(f"survival expects square prototypes; got {h}×{w}")
    theta = transforms.sample_theta(jax.random.key(seed), samples, ranges)
    a = np.asarray(transforms.affine_matrix(theta), np.float64)
    c = (w - 1) / 2.0
    v, u = np.meshgrid(np.arange(h) - c, np.arange(w) - c, indexing="ij")
    pixels = np.stack([u.ravel(), v.ravel()])  # [2, H·W], centred pixel units (x, y)
    out = np.einsum("sab,sbp->sap", np.linalg.inv(a[:, :, :2]), pixels[None] - c * a[:, :, 2:])
    inside = (np.abs(out) <= c + 0.5).all(axis=1).astype(np.float64)  # [samples, H·W]
    ink = prototypes.reshape(f, letters, h * w).astype(np.float64)
    total = ink.sum(axis=-1)
    kept = np.einsum("flp,sp->fl", ink, inside) / samples
    return (kept / np.where(total > 0, total, 1.0)).mean(axis=1)
