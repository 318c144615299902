"""The affine transformer: exact against PyTorch, geometry, gradients, jit/vmap, validation."""

from __future__ import annotations

import math
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_robustness import transforms as T

H = W = 28


def _pattern(seed=0, batch=1, size=H, low=0.0, high=1.0):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, (batch, size, size, 1)).astype(np.float32)


def _theta(**kw):
    t = dict(tx=0.0, ty=0.0, shear_x=0.0, shear_y=0.0, scale=1.0, rotation=0.0) | kw
    return np.array([[t[n] for n in T.THETA_NAMES]], np.float32)


def test_matches_pytorch_affine_grid_grid_sample():
    # Reference made once with torch 2.13 affine_grid + grid_sample(align_corners=True, zeros) + clamp.
    ref = np.load(Path(__file__).parent / "data" / "torch_grid_sample.npz")
    np.testing.assert_allclose(T.affine_matrix(ref["theta"]), ref["matrices"], atol=1e-6)
    out = T.affine_transform(ref["images"], ref["theta"])
    np.testing.assert_allclose(out, ref["out"], atol=2e-5)


def test_affine_matrix_formula():
    tx, ty, shx, shy, s, r = 0.1, -0.2, 0.3, -0.4, 0.9, 0.7
    m = np.asarray(T.affine_matrix(np.array([tx, ty, shx, shy, s, r], np.float32)))
    c, n = math.cos(r), math.sin(r)
    expected = [[c * s - n * s * shx, -n * s + c * s * shx, tx], [c * s * shy + n * s, -n * s * shy + c * s, ty]]
    np.testing.assert_allclose(m, expected, rtol=1e-6, atol=1e-6)
    assert T.affine_matrix(np.zeros((4, 3, 6), np.float32)).shape == (4, 3, 2, 3)


def test_identity_returns_image():
    x = _pattern(batch=3)
    out = T.affine_transform(x, T.identity_theta(3))
    np.testing.assert_allclose(out, x, atol=1e-5)  # linspace rounding: PyTorch differs by the same


@pytest.mark.parametrize("shift", [1, 3, -2])
def test_translation_moves_by_expected_pixels(shift):
    # θ maps output to input: out(x) = in(x + tx); with align_corners=True one pixel is 2/(W-1).
    x = _pattern(seed=1)
    out = np.asarray(T.affine_transform(x, _theta(tx=2.0 * shift / (W - 1))))[0, ..., 0]
    src = x[0, ..., 0]
    if shift > 0:
        np.testing.assert_allclose(out[:, : W - shift], src[:, shift:], atol=1e-5)
        np.testing.assert_allclose(out[:, W - shift :], 0.0, atol=1e-6)
    else:
        np.testing.assert_allclose(out[:, -shift:], src[:, : W + shift], atol=1e-5)
        np.testing.assert_allclose(out[:, :-shift], 0.0, atol=1e-6)
    # vertical: ty moves rows the same way
    out_y = np.asarray(T.affine_transform(x, _theta(ty=2.0 * abs(shift) / (H - 1))))[0, ..., 0]
    np.testing.assert_allclose(out_y[: H - abs(shift)], src[abs(shift) :], atol=1e-5)


def test_rotation_by_quarter_turn():
    # r = π/2: the input is read at (x_in, y_in) = (-y, x), i.e. out[i, j] = in[j, W-1-i].
    x = np.zeros((1, H, W, 1), np.float32)
    x[0, 3:8, 5:20, 0] = 1.0  # an asymmetric bar plus a dot
    x[0, 20, 24, 0] = 0.5
    out = np.asarray(T.affine_transform(x, _theta(rotation=math.pi / 2)))[0, ..., 0]
    i, j = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    np.testing.assert_allclose(out, x[0, j, W - 1 - i, 0], atol=1e-5)


def test_scale_above_one_shrinks_content():
    x = np.zeros((1, H, W, 1), np.float32)
    x[0, 4:24, 4:24] = 1.0
    ink = lambda t: float(np.asarray(T.affine_transform(x, t)).sum())  # noqa: E731
    assert ink(_theta(scale=1.2)) < ink(_theta()) < ink(_theta(scale=0.8))


def _fd_check(f, x0, direction, h=1e-4, one_sided=False):
    g = jax.grad(f)(x0)
    analytic = float(jnp.vdot(g, direction))
    if one_sided:
        numeric = (f(x0 + h * direction) - f(x0)) / h
    else:
        numeric = (f(x0 + h * direction) - f(x0 - h * direction)) / (2 * h)
    np.testing.assert_allclose(analytic, float(numeric), rtol=1e-4, atol=1e-6)


def test_gradients_match_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        x = jnp.asarray(_pattern(seed=3, batch=2, low=0.1, high=0.5), jnp.float64)  # no clipping active
        theta = jnp.asarray(
            [[0.05, -0.03, 0.11, -0.07, 0.93, 0.3], [-0.1, 0.08, -0.2, 0.15, 1.05, -0.9]], jnp.float64
        )
        weights = jnp.asarray(rng.normal(size=x.shape))
        loss_theta = lambda t: jnp.sum(weights * T.affine_transform(x, t))  # noqa: E731
        loss_image = lambda im: jnp.sum(weights * T.affine_transform(im, theta))  # noqa: E731
        for _ in range(3):
            _fd_check(loss_theta, theta, jnp.asarray(rng.normal(size=theta.shape)), h=1e-7)
            _fd_check(loss_image, x, jnp.asarray(rng.normal(size=x.shape)), h=1e-3)
        # At the identity every sample sits on a pixel centre: the gradient is the forward
        # difference (like grid_sample), not the zero a symmetric formulation would give.
        ident = T.identity_theta(2, jnp.float64)
        assert float(jnp.abs(jax.grad(loss_theta)(ident)).max()) > 1e-3
        _fd_check(loss_theta, ident, jnp.asarray(np.eye(6)[0][None].repeat(2, 0)), h=1e-8, one_sided=True)


def test_jit_equals_no_jit_and_vmap_equals_loop():
    x = _pattern(seed=4, batch=5)
    theta = np.asarray(T.sample_theta(jax.random.key(0), 5, T.FONTS_RANGES["hard"]))
    eager = T.affine_transform(x, theta)
    jitted = jax.jit(T.affine_transform)(x, theta)
    np.testing.assert_allclose(eager, jitted, atol=1e-5)
    looped = np.concatenate([np.asarray(T.affine_transform(x[i : i + 1], theta[i : i + 1])) for i in range(5)])
    vmapped = jax.vmap(lambda im, t: T.affine_transform(im[None], t[None])[0])(x, theta)
    np.testing.assert_allclose(vmapped, looped, atol=1e-5)
    # a vmapped leading axis of batches (e.g. restarts) equals the flat batch
    stacked = jax.vmap(T.affine_transform)(x.reshape(5, 1, H, W, 1), theta.reshape(5, 1, 6))
    np.testing.assert_allclose(stacked.reshape(eager.shape), eager, atol=1e-5)


def test_output_in_unit_interval_and_multichannel():
    x = _pattern(seed=5, batch=4, size=16).repeat(3, axis=-1) * 1.0
    theta = T.sample_theta(jax.random.key(1), 4, T.AFFINE_ATTACK_RANGES)
    out = np.asarray(T.affine_transform(x, theta))
    chex.assert_shape(out, (4, 16, 16, 3))
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out[..., 0], out[..., 2], atol=1e-6)


def test_sample_and_clip_theta_respect_ranges():
    ranges = T.FONTS_RANGES["hard"]
    low, high = map(np.asarray, ranges.arrays())
    th = np.asarray(T.sample_theta(jax.random.key(2), 5000, ranges))
    assert (th >= low).all() and (th <= high).all()
    assert (th.min(0) < low + 0.05 * (high - low)).all() and (th.max(0) > high - 0.05 * (high - low)).all()
    clipped = np.asarray(T.clip_theta(th * 3.0, ranges))
    assert (clipped >= low - 1e-7).all() and (clipped <= high + 1e-7).all()


@pytest.mark.parametrize(
    "images, theta, match",
    [
        (np.zeros((2, 28, 28), np.float32), np.zeros((2, 6), np.float32), "NHWC"),
        (np.zeros((2, 28, 28, 1), np.uint8), np.zeros((2, 6), np.float32), "floating point"),
        (np.zeros((2, 28, 28, 1), np.float32), np.zeros((2, 5), np.float32), "size 6"),
        (np.zeros((2, 28, 28, 1), np.float32), np.zeros((3, 6), np.float32), r"shape \(2, 6\)"),
        (np.zeros((2, 28, 28, 1), np.float32), np.zeros((2, 6), np.int32), "floating-point"),
    ],
)
def test_bad_input_raises(images, theta, match):
    with pytest.raises(ValueError, match=match):
        T.affine_transform(images, theta)
