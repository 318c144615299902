"""The k-nearest-neighbour local subspace: the paper's approximation of the data manifold where
no decoder is known (paper digest §5.4; original code §7.4).

The tangent space of the manifold at a clean image x is estimated from its k = 50 nearest training
images x_1..x_k, in one of the paper's two ways (``center``):

* ``"point"`` (main paper): the span of x_i − x.
* ``"mean"`` (supplement): the span of x_i − x̄, with x̄ the neighbours' mean.

The distance of a perturbed image x̃ = x + δ to the manifold is the distance of x̃ to the affine
subspace x + span, i.e. the norm of the least-squares residual δ − Xβ*, β* = argmin ‖Xβ − δ‖
(projecting δ rather than x̃ is what keeps the small ‖δ‖ measurable).  The angle between δ and
the span is the second statistic (90° = orthogonal).  With ``center="mean"`` the clean image gets
its own distance: that of x − x̄ to the span (the "test" row of the supplement's figures); with
``center="point"`` the span passes through x and that distance is 0 by construction.

Neighbours are those of the clean image x, as the paper's text describes (the original code
searched those of x̃, original code §7.4).  They are searched in a PCA space of the training
images: 40 components by default, the original code's ``pre_pca`` (the paper digest mentions a
20-dimensional space; ``num_components`` chooses).  The original used a kd-tree;
this is exact brute force: squared distances by one matmul
per chunk of the training set and ``lax.top_k``, merged chunk by chunk in a ``lax.scan`` so that
60k × 784 training images never meet all queries at once.

The least squares is :func:`.subspace.span_projection` (rank-revealing ``eigh`` of the Gram
matrix, two passes; why not QR or SVD is explained there).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from manifold_robustness.manifolds.subspace import residual_and_angle, span_basis

__all__ = [
    "PCA", "KnnIndex", "KnnDistance", "CENTERS", "fit_pca", "pca_encode", "build_index", "nearest_neighbors",
    "local_basis", "subspace_distance", "knn_distance",
]

CENTERS = ("point", "mean")


class PCA(NamedTuple):
    """mean: float32[D]; components: float32[D, c] (orthonormal columns, by decreasing variance);
    variance: float32[c] (the eigenvalues of the covariance)."""

    mean: jax.Array
    components: jax.Array
    variance: jax.Array


class KnnIndex(NamedTuple):
    """The training set prepared for neighbour search.  pca: :class:`PCA`; codes: float32[N, c]
    (PCA coordinates); sq_norms: float32[N] (‖code‖²); images: float32[N, D] or uint8[N, D]
    (flattened training images, gathered in pixel space once neighbours are found)."""

    pca: PCA
    codes: jax.Array
    sq_norms: jax.Array
    images: jax.Array


class KnnDistance(NamedTuple):
    """Per query b: distance float32[B] = ‖δ − Xβ*‖ (the distance of x̃ to the local subspace
    through x); angle float32[B] in degrees between δ and the span (90 = orthogonal; 0 when δ = 0);
    clean_distance float32[B] = distance of x to x̄ + span (``center="mean"``; 0 for "point");
    neighbors int32[B, k] training indices, nearest first."""

    distance: jax.Array
    angle: jax.Array
    clean_distance: jax.Array
    neighbors: jax.Array


# ------------------------------------------------------------------------------------ validation


def _flat(images, name: str, allow_uint8: bool = False) -> np.ndarray | jax.Array:
    """float[N, H, W, C] or float[N, D] → [N, D] (shape and dtype checked)."""
    shape = tuple(np.shape(images))
    if len(shape) not in (2, 4):
        raise ValueError(f"{name} must be [N, H, W, C] images or [N, D] vectors; got shape {shape}")
    dtype = np.dtype(getattr(images, "dtype", np.asarray(images).dtype))
    ok = np.issubdtype(dtype, np.floating) or (allow_uint8 and dtype == np.uint8)
    if not ok:
        raise ValueError(f"{name} must be floating point{' or uint8' if allow_uint8 else ''}; got {dtype}")
    return jnp.reshape(images, (shape[0], -1))


def _is_concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


def _as_float(x: jax.Array) -> jax.Array:
    return x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x.astype(jnp.float32)


# ------------------------------------------------------------------------------------ PCA


def fit_pca(images, num_components: int = 40, *, max_samples: int | None = None, key=None) -> PCA:
    """PCA of training images (float[N, H, W, C] or float[N, D], or uint8) by ``eigh`` of the
    D×D covariance.  ``max_samples``: fit on a random subsample of that size (needs ``key``).
    Component signs are fixed (largest-magnitude entry positive) so fits are reproducible."""
    x = _flat(images, "images", allow_uint8=True)
    n, d = x.shape
    if not 1 <= num_components <= min(n, d):
        raise ValueError(f"num_components must be in [1, min(N, D)] = [1, {min(n, d)}]; got {num_components}")
    if max_samples is not None and max_samples < n:
        if key is None:
            raise ValueError("max_samples needs a key to draw the subsample")
        if max_samples < num_components:
            raise ValueError(f"max_samples ({max_samples}) must be at least num_components ({num_components})")
        x = x[jax.random.choice(key, n, (max_samples,), replace=False)]
    return _fit_pca(x, num_components)


@functools.partial(jax.jit, static_argnums=1)
def _fit_pca(x: jax.Array, c: int) -> PCA:
    x = _as_float(x)
    mean = x.mean(0)
    xc = x - mean
    cov = (xc.T @ xc) / jnp.maximum(x.shape[0] - 1, 1)
    lam, vec = jnp.linalg.eigh(cov)  # ascending
    lam, vec = lam[::-1][:c], vec[:, ::-1][:, :c]
    sign = jnp.sign(vec[jnp.argmax(jnp.abs(vec), axis=0), jnp.arange(c)])
    return PCA(mean, vec * sign, jnp.maximum(lam, 0.0))


def pca_encode(pca: PCA, images) -> jax.Array:
    """float[N, H, W, C] | float[N, D] (or uint8) → float32[N, c] PCA coordinates."""
    x = _flat(images, "images", allow_uint8=True)
    if x.shape[1] != pca.mean.shape[0]:
        raise ValueError(f"images have {x.shape[1]} values each; this PCA was fitted on {pca.mean.shape[0]}")
    return _encode(pca, x)


@jax.jit
def _encode(pca: PCA, x: jax.Array) -> jax.Array:
    return (_as_float(x) - pca.mean) @ pca.components


def build_index(train_images, num_components: int = 40, *, max_pca_samples: int | None = None, key=None) -> KnnIndex:
    """Fit the PCA (optionally on a subsample of ``max_pca_samples``, drawn with ``key``) and
    encode the whole training set.  train_images: float32[N, H, W, C] in [0, 1] or uint8 (kept
    as given: uint8 quarters the memory of the pixel-space gather)."""
    x = _flat(train_images, "train_images", allow_uint8=True)
    pca = fit_pca(x, num_components, max_samples=max_pca_samples, key=key)
    codes = _encode(pca, x)
    return KnnIndex(pca, codes, jnp.sum(codes * codes, axis=1), jnp.asarray(x))


# ------------------------------------------------------------------------------------ search


def nearest_neighbors(index: KnnIndex, queries, k: int = 50, *, chunk: int = 4096) -> tuple[jax.Array, jax.Array]:
    """The k nearest training images of each query, in PCA space, exact.

    queries: float[Q, H, W, C] | float[Q, D].  Returns (indices int32[Q, k], squared PCA-space
    distances float32[Q, k]), nearest first.  The training set is visited in chunks of ``chunk``.
    """
    q = _flat(queries, "queries")
    n = index.codes.shape[0]
    if q.shape[1] != index.pca.mean.shape[0]:
        raise ValueError(f"queries have {q.shape[1]} values each; the index holds images of {index.pca.mean.shape[0]}")
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, {n}] (the training set size); got {k!r}")
    if chunk < 1:
        raise ValueError(f"chunk must be positive; got {chunk}")
    return _search(index, _encode(index.pca, q), int(k), int(min(chunk, n)))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _search(index: KnnIndex, q: jax.Array, k: int, chunk: int):
    n, c = index.codes.shape
    pad = -n % chunk
    codes = jnp.pad(index.codes, ((0, pad), (0, 0))).reshape(-1, chunk, c)
    norms = jnp.pad(index.sq_norms, (0, pad), constant_values=jnp.inf).reshape(-1, chunk)
    ids = jnp.arange(n + pad, dtype=jnp.int32).reshape(-1, chunk)
    q_norms = jnp.sum(q * q, axis=1, keepdims=True)

    def step(best, block):
        codes_b, norms_b, ids_b = block
        d = q_norms - 2.0 * q @ codes_b.T + norms_b[None]
        cand_d = jnp.concatenate([best[0], d], axis=1)
        cand_i = jnp.concatenate([best[1], jnp.broadcast_to(ids_b, d.shape)], axis=1)
        neg, pos = jax.lax.top_k(-cand_d, k)
        return (-neg, jnp.take_along_axis(cand_i, pos, axis=1)), None

    init = (jnp.full((q.shape[0], k), jnp.inf, jnp.float32), jnp.zeros((q.shape[0], k), jnp.int32))
    (dist, idx), _ = jax.lax.scan(step, init, (codes, norms, ids))
    return idx, jnp.maximum(dist, 0.0)


# ------------------------------------------------------------------------------------ least squares


def local_basis(neighbours: jax.Array, x: jax.Array, center: str = "point") -> jax.Array:
    """neighbours: float32[..., k, D], x: float32[..., D] → the columns x_i − x (``"point"``) or
    x_i − x̄ (``"mean"``) as float32[..., D, k]."""
    if center not in CENTERS:
        raise ValueError(f"center must be one of {CENTERS}; got {center!r}")
    origin = x[..., None, :] if center == "point" else jnp.mean(neighbours, axis=-2, keepdims=True)
    return jnp.swapaxes(neighbours - origin, -1, -2)


def _distances_one(neighbours, x, x_tilde, center: str, rtol: float):
    """One query: neighbours float32[k, D], x and x̃ float32[D] → (distance, angle, clean_distance)."""
    basis = local_basis(neighbours, x, center)
    delta = x_tilde - x
    both = jnp.stack([delta, x - jnp.mean(neighbours, axis=0)])  # δ, and x − x̄ for the clean row
    u = span_basis(basis, rtol)
    dist, angle = residual_and_angle(both, (both @ u) @ u.T)
    clean = dist[1] if center == "mean" else jnp.float32(0.0)
    return dist[0], angle[0], clean


def subspace_distance(index: KnnIndex, neighbors, x, x_tilde, center: str = "point", *, rtol: float = 1e-6,
                      query_batch: int = 256) -> KnnDistance:
    """Distances of x̃ to the local subspace of x spanned by given neighbours.

    neighbors: int32[B, k] training indices (from :func:`nearest_neighbors` of x); x, x_tilde:
    float32[B, H, W, C] | float32[B, D] in the index's pixel space.  Queries are processed
    ``query_batch`` at a time (a [query_batch, k, D] gather).  Returns :class:`KnnDistance`.
    """
    xf, xt = _flat(x, "x"), _flat(x_tilde, "x_tilde")
    nb = jnp.asarray(neighbors)
    if _is_concrete(xf, xt, nb):
        d = index.images.shape[1]
        if xf.shape != xt.shape or xf.shape[1] != d:
            raise ValueError(f"x and x_tilde must both be [B, {d}] (or images of {d} values); got {xf.shape} and {xt.shape}")
        if nb.ndim != 2 or nb.shape[0] != xf.shape[0] or not jnp.issubdtype(nb.dtype, jnp.integer):
            raise ValueError(f"neighbors must be int[B={xf.shape[0]}, k]; got {nb.dtype}{list(nb.shape)}")
        if nb.shape[1] < 1 or int(nb.min()) < 0 or int(nb.max()) >= index.images.shape[0]:
            raise ValueError(f"neighbors must hold at least one index in [0, {index.images.shape[0]})")
    if center not in CENTERS:
        raise ValueError(f"center must be one of {CENTERS}; got {center!r}")
    if query_batch < 1:
        raise ValueError(f"query_batch must be positive; got {query_batch}")
    return _subspace(index.images, nb, xf.astype(jnp.float32), xt.astype(jnp.float32), center, rtol, query_batch)


@functools.partial(jax.jit, static_argnums=(4, 5, 6))
def _subspace(images, nb, x, xt, center, rtol, query_batch):
    def one(args):
        idx, x1, xt1 = args
        return _distances_one(_as_float(images[idx]), x1, xt1, center, rtol)

    distance, angle, clean = jax.lax.map(one, (nb, x, xt), batch_size=min(query_batch, x.shape[0]))
    return KnnDistance(distance, angle, clean, nb.astype(jnp.int32))


def knn_distance(index: KnnIndex, x, x_tilde, k: int = 50, center: str = "point", *, chunk: int = 4096,
                 rtol: float = 1e-6, query_batch: int = 256) -> KnnDistance:
    """The paper's k-NN distance to the manifold: neighbours of the clean x (PCA space), then the
    distance of x̃ to the local subspace through x.  x, x_tilde: float32[B, H, W, C] in [0, 1]."""
    neighbors, _ = nearest_neighbors(index, x, k, chunk=chunk)
    return subspace_distance(index, neighbors, x, x_tilde, center, rtol=rtol, query_batch=query_batch)
