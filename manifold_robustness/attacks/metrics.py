"""Success rates and perturbation sizes from attack results (pure)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def correct(logits_fn, images: jax.Array, labels: jax.Array) -> jax.Array:
    """bool[B]: the classifier gets the clean example right (only these count as attacked)."""
    return jnp.argmax(logits_fn(images), axis=-1) == labels


def success_rate(success: jax.Array, correct_mask: jax.Array) -> jax.Array:
    """The paper's rate (its code's ``raw_success``): successful (correct example, restart) pairs
    over (#correct × #restarts), i.e. an average over restarts.  success: bool[R, B]."""
    c = correct_mask.astype(jnp.float32)
    return jnp.sum(success * c[None]) / jnp.maximum(success.shape[0] * jnp.sum(c), 1.0)


def worst_case_success_rate(success: jax.Array, correct_mask: jax.Array) -> jax.Array:
    """An example counts as broken if any restart succeeds (over correctly classified examples)."""
    c = correct_mask.astype(jnp.float32)
    return jnp.sum(jnp.any(success, axis=0) * c) / jnp.maximum(jnp.sum(c), 1.0)


def mean_norm_of_successes(norms: jax.Array, success: jax.Array, correct_mask: jax.Array) -> jax.Array:
    """Average perturbation norm (e.g. ‖δ‖∞, the paper's CelebA measure) over successful pairs on
    correct examples; NaN when there is none."""
    m = (success & correct_mask[None]).astype(jnp.float32)
    return jnp.sum(norms * m) / jnp.sum(m)


def transfer_success_rate(success_on_target: jax.Array, correct_source: jax.Array, correct_target: jax.Array) -> jax.Array:
    """Black-box transfer: examples crafted on a source model and evaluated on the target; only
    examples both models classify correctly count (paper §5.3)."""
    return success_rate(success_on_target, correct_source & correct_target)


def transfer(x_adv: jax.Array, target_logits_fn, labels: jax.Array) -> jax.Array:
    """bool[R, B]: do adversarial images crafted on a source model (x_adv: float[R, B, H, W, C])
    fool a *target* model?  Combine with :func:`transfer_success_rate`."""
    return jnp.argmax(jax.vmap(target_logits_fn)(x_adv), axis=-1) != labels[None]
