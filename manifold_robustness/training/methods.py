"""Training methods as pure batch builders (DESIGN principle 4).

A method is ``builder(variables, batch, key, arrays) -> (inputs, labels, weights)``: given the
current model variables, a batch dict (``image`` float32[B, H, W, C] in [0, 1], ``label`` int32[B],
``mask`` bool[B] marking real rows, plus dataset extras such as FONTS ``font_id``/``theta``) and a
key, it returns what the optimiser sees.  ``weights`` float32[B'] sums to 1 and weights each row's
cross-entropy, which expresses both the padding mask and the paper's mixtures (50 % clean + 50 %
adversarial; 50/25/25 for combined training, loss = mean of the parts' losses).  ``arrays`` is
the context's pytree of large constant arrays (FONTS prototypes, decoder parameters), passed to the
compiled epoch as an argument rather than baked into it.

Methods are made by factories registered in :data:`METHODS` under the names the CLI and configs
use; each factory takes a :class:`MethodContext` with what the method may need.  The adversarial
methods plug in through the same registry.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from manifold_robustness import transforms
from manifold_robustness.registry import Registry

Batch = dict[str, jax.Array]
Builder = Callable[[Any, Batch, jax.Array, Any], tuple[jax.Array, jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class MethodContext:
    """What a method may use: the classifier; the dataset's transformation ranges (FONTS: its own
    θ ranges; EMNIST / F-MNIST / CelebA: translation ±0.15, shear ±0.2, scale [0.85, 1.15],
    rotation ±π/10); the budget ``eta`` of transformation / on-manifold perturbations and ``eps``
    of image-space ones (paper: 0.3 each); ``attack`` overrides for the inner attacks (e.g.
    ``{"iterations": 10}``); ``decode_fn(arrays["decoder"], z, labels)`` for learned-manifold
    methods; and ``arrays``, a pytree of large constants (``prototypes``, ``decoder`` parameters)
    handed to the compiled epoch at run time.

    ``manifold``: the manifold object (:mod:`manifold_robustness.manifolds.objects`) that a
    method's registry entry ``needs``; when given, the on-manifold methods attack through its
    ``space`` and ``arrays`` is its ``context`` (the runner's way; ``decode_fn`` and the
    ``prototypes`` / ``decoder`` keys are the way without manifold objects)."""

    classifier: Any
    ranges: transforms.TransformRanges = transforms.AFFINE_ATTACK_RANGES
    eta: float = 0.3
    eps: float = 0.3
    attack: dict = dataclasses.field(default_factory=dict)
    decode_fn: Any = None
    arrays: Any = None
    manifold: Any = None


METHODS = Registry("training method", "methods")
register = METHODS.register


def make_builder(name: str, context: MethodContext) -> Builder:
    """The batch builder of method ``name``; an unknown name lists the known ones."""
    return METHODS.lookup(name).factory(context)


def mask_weights(mask: jax.Array) -> jax.Array:
    """float32[B]: 1/#real on real rows, 0 on padding."""
    m = mask.astype(jnp.float32)
    return m / jnp.maximum(m.sum(), 1.0)


def mixture(parts: list[tuple[jax.Array, jax.Array, jax.Array]]) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Concatenate (inputs, labels, mask) parts; the loss is the mean of the parts' mean losses."""
    inputs = jnp.concatenate([p[0] for p in parts])
    labels = jnp.concatenate([p[1] for p in parts])
    weights = jnp.concatenate([mask_weights(p[2]) / len(parts) for p in parts])
    return inputs, labels, weights


def halves(batch: Batch) -> tuple[Batch, Batch]:
    """Split a batch into its first and second half (the paper's clean / adversarial halves)."""
    half = batch["label"].shape[0] // 2
    return ({k: v[:half] for k, v in batch.items()}, {k: v[half:] for k, v in batch.items()})


@register("normal", "plain training on the clean batch")
def normal(context: MethodContext) -> Builder:
    del context

    def build(variables, batch, key, arrays):
        del variables, key, arrays
        return batch["image"], batch["label"], mask_weights(batch["mask"])

    return build


def random_transform_theta(key: jax.Array, n: int, ranges: transforms.TransformRanges, eta: float) -> jax.Array:
    """float32[n, 6] uniform on {t : ‖t − identity‖∞ ≤ eta} ∩ ranges.

    The original code drew in the η-ball around 0 and clipped to the ranges, so the scale always
    clipped to its minimum (every augmented image magnified ~1.33×); sampling around the identity
    fixes that, and sampling on the intersection (rather than clipping) keeps it uniform.
    """
    low, high = ranges.arrays()
    ident = jnp.asarray(transforms.IDENTITY_THETA)
    low = jnp.maximum(low, ident - eta)
    high = jnp.minimum(high, ident + eta)
    return jax.random.uniform(key, (n, 6), jnp.float32, low, high)


@register("augment", "50% clean + 50% randomly affine-transformed (uniform, ‖t‖∞ ≤ η around the identity)")
def augment(context: MethodContext) -> Builder:
    def build(variables, batch, key, arrays):
        del variables, arrays
        clean, other = halves(batch)
        theta = random_transform_theta(key, other["label"].shape[0], context.ranges, context.eta)
        warped = transforms.affine_transform(other["image"], theta)
        return mixture([(clean["image"], clean["label"], clean["mask"]), (warped, other["label"], other["mask"])])

    return build
