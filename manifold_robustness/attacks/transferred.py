"""Transfer (black-box) attacks: adversarial examples crafted on a *source* model, scored on the
model under evaluation (paper §5.3; supplement E).

>>> atk = attacks.Transfer(attacks.make("linf"), clf.logits_fn)      # any attack, any source
>>> res = atk(target_logits_fn, batch, key, (source_variables, None))  # (source, the inner context)
>>> counted = atk.counted(target_logits_fn, batch, (source_variables, None))
>>> attacks.success_rate(res.success, counted)

The context is a pair: the source model's variables and the inner attack's own context (FONTS
prototypes, VAE-GAN variables, or None for an image attack), so one compiled program serves every
target and every source.  ``success`` is the *target's* misclassification of the source's
adversarial example, and an example counts only where both models classify the clean input
correctly (:meth:`Transfer.counted`): the paper's rule.  ``first_success`` is the iteration of
the image the target saw (the source's first success, else its last iterate; −1 where the
target is not fooled); the images and norms are the source attack's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from manifold_robustness.attacks import metrics
from manifold_robustness.attacks.api import Attack
from manifold_robustness.attacks.engine import AttackResult

__all__ = ["Transfer"]


@dataclasses.dataclass(frozen=True)
class Transfer:
    """``source`` attack run against ``source_logits(variables)``, scored on the target model."""

    source: Attack
    source_logits: Callable[[Any], Callable]  # source variables -> logits_fn (e.g. clf.logits_fn)

    @property
    def name(self) -> str:
        return f"transfer_{self.source.name}"

    @property
    def config(self):
        return self.source.config

    @property
    def space(self):
        return self.source.space

    def with_chunks(self, chunks: int) -> "Transfer":
        """The source attack with ``chunks`` (:meth:`Attack.with_chunks`)."""
        return dataclasses.replace(self, source=self.source.with_chunks(chunks))

    def stronger(self, iterations: int, restarts: int, objective=None) -> "Transfer":
        """The transfer of the source attack's stronger version (see :meth:`Attack.stronger`)."""
        return dataclasses.replace(self, source=self.source.stronger(iterations, restarts, objective))

    def clean(self, batch: dict, context=None) -> jax.Array:
        return self.source.clean(batch, None if context is None else context[1])

    def counted(self, logits_fn, batch: dict, context) -> jax.Array:
        """bool[B]: both the target (``logits_fn``) and the source classify the clean input right."""
        clean = self.clean(batch, context)
        return (metrics.correct(logits_fn, clean, batch["label"])
                & metrics.correct(self.source_logits(context[0]), clean, batch["label"]))

    def __call__(self, logits_fn, batch: dict, key: jax.Array, context) -> AttackResult:
        source_variables, inner = context
        res = self.source(self.source_logits(source_variables), batch, key, inner)
        fooled = metrics.transfer(res.x, logits_fn, batch["label"])
        # the target sees only the returned iterate: the source's first success, else its last one
        seen = jnp.where(res.first_success >= 0, res.first_success, self.source.config.iterations)
        return res._replace(success=fooled, first_success=jnp.where(fooled, seen, -1))
