"""Normal weight initialisers that compile one random program per size, not per shape.

``jax.nn.initializers.normal`` / ``variance_scaling(..., "normal")`` call ``jax.random.normal``
with the parameter's shape, and outside ``jit`` every new shape compiles its own threefry program
(0.3–1 s each on a 2-core CPU): building the paper's CNN in a fresh process compiled ~10 of them,
ten class VAE-GANs ~15.  These draw a flat block of standard normals whose length is the next
power of two ≥ the parameter's size (one compiled program per power of two, shared by every
model), take its first ``size`` values in row-major order and scale them; outside a trace the
slice and scale run on the host.  The values are i.i.d. normal as before, from another stream
than ``jax.random.normal(key, shape)`` (so a model's initial weights differ from earlier
versions'), identical with and without ``jit`` up to rounding.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["normal", "scaled_normal"]


def block_size(size: int) -> int:
    """The length of the block a parameter of ``size`` values is drawn from."""
    return 1 << max(int(size) - 1, 0).bit_length()


@functools.partial(jax.jit, static_argnums=(1, 2))
def _block(key, size: int, dtype) -> jax.Array:
    return jax.random.normal(key, (size,), dtype)


def _draw(key, shape, dtype, stddev: float) -> jax.Array:
    shape = tuple(int(d) for d in shape)
    size = math.prod(shape)
    block = _block(key, block_size(size), jnp.dtype(dtype))
    if isinstance(block, jax.core.Tracer):  # inside jit / vmap / eval_shape
        return block[:size].reshape(shape) * jnp.asarray(stddev, dtype)
    host = np.asarray(block)[:size].reshape(shape) * np.asarray(stddev, dtype)
    return jnp.asarray(host.astype(dtype, copy=False))


def normal(stddev: float):
    """N(0, stddev²) weights (``jax.nn.initializers.normal``'s distribution)."""
    def init(key, shape, dtype=jnp.float32):
        return _draw(key, shape, dtype, stddev)

    return init


def scaled_normal(scale: float):
    """N(0, scale / fan_in) weights, fan_in = the product of every axis but the last
    (``jax.nn.initializers.variance_scaling(scale, "fan_in", "normal")``'s distribution for
    dense kernels [in, out] and convolution kernels [..., in, out])."""
    def init(key, shape, dtype=jnp.float32):
        fan_in = math.prod(int(d) for d in shape[:-1]) or 1
        return _draw(key, shape, dtype, math.sqrt(scale / fan_in))

    return init
