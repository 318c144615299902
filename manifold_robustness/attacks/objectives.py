"""Per-example objectives the engine *maximises*: ``objective(logits, labels, delta) -> float[B]``
(``delta`` is v − v₀ in the attacked variable's space)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array, delta: jax.Array) -> jax.Array:
    """The training loss (Madry et al.; the original's ``UntargetedF0`` with the sign flipped)."""
    del delta
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def margin(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """z_y − max_{j≠y} z_j: positive while correctly classified.  The true logit is masked with
    −inf (the original zeroed it, which is wrong when every other logit is negative)."""
    true = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    others = jnp.where(jax.nn.one_hot(labels, logits.shape[-1], dtype=bool), -jnp.inf, logits)
    return true - jnp.max(others, axis=-1)


def negative_margin(logits: jax.Array, labels: jax.Array, delta: jax.Array) -> jax.Array:
    """max_{j≠y} z_j − z_y: the margin (C&W-style) objective without its κ cap or norm penalty;
    positive once misclassified.  The audit's second objective beside cross-entropy."""
    del delta
    return -margin(logits, labels)


OBJECTIVES = {"cross_entropy": cross_entropy, "margin": negative_margin}  # by the names configs use


def carlini_wagner(kappa: float = 1.5, lam: float = 1.0):
    """Carlini–Wagner L2 (paper §5.3): minimise max(−κ, margin) + λ‖δ‖₂ → maximise its negative."""

    def objective(logits, labels, delta):
        f = jnp.maximum(-kappa, margin(logits, labels))
        return -(f + lam * jnp.sqrt(jnp.sum(jnp.square(delta.reshape(delta.shape[0], -1)), axis=1)))

    return objective
