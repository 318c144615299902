"""Success rates and perturbation sizes from attack results (pure)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _xp(*arrays):
    """numpy when every array is already on the host (a summary of fetched outcomes then runs no
    device program: each would be compiled or loaded first), else jax.numpy (traced or on device)."""
    return np if all(isinstance(a, np.ndarray) for a in arrays) else jnp


def correct(logits_fn, images: jax.Array, labels: jax.Array) -> jax.Array:
    """bool[B]: the classifier gets the clean example right (only these count as attacked)."""
    return jnp.argmax(logits_fn(images), axis=-1) == labels


def success_rate(success: jax.Array, correct_mask: jax.Array) -> jax.Array:
    """The paper's rate (its code's ``raw_success``): successful (correct example, restart) pairs
    over (#correct × #restarts), i.e. an average over restarts.  success: bool[R, B]."""
    xp = _xp(success, correct_mask)
    c = correct_mask.astype(xp.float32)
    return xp.sum(success * c[None]) / xp.maximum(success.shape[0] * xp.sum(c), 1.0)


def worst_case_success_rate(success: jax.Array, correct_mask: jax.Array) -> jax.Array:
    """An example counts as broken if any restart succeeds (over correctly classified examples)."""
    xp = _xp(success, correct_mask)
    c = correct_mask.astype(xp.float32)
    return xp.sum(xp.any(success, axis=0) * c) / xp.maximum(xp.sum(c), 1.0)


def mean_norm_of_successes(norms: jax.Array, success: jax.Array, correct_mask: jax.Array) -> jax.Array:
    """Average perturbation norm (e.g. ‖δ‖∞, the paper's CelebA measure) over successful pairs on
    correct examples; NaN when there is none."""
    xp = _xp(norms, success, correct_mask)
    m = (success & correct_mask[None]).astype(xp.float32)
    with np.errstate(invalid="ignore"):  # numpy's 0/0 is the documented NaN, not a warning
        return xp.sum(norms * m) / xp.sum(m)


def transfer_success_rate(success_on_target: jax.Array, correct_source: jax.Array, correct_target: jax.Array) -> jax.Array:
    """Black-box transfer: examples crafted on a source model and evaluated on the target; only
    examples both models classify correctly count (paper §5.3)."""
    return success_rate(success_on_target, correct_source & correct_target)


def transfer(x_adv: jax.Array, target_logits_fn, labels: jax.Array) -> jax.Array:
    """bool[R, B]: do adversarial images crafted on a source model (x_adv: float[R, B, H, W, C])
    fool a *target* model?  Combine with :func:`transfer_success_rate`."""
    return jnp.argmax(jax.vmap(target_logits_fn)(x_adv), axis=-1) != labels[None]
