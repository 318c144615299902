"""The parameterisations (rows of the engine's table).  Each reads what it needs from the batch
dict and a ``context`` pytree (arrays that are the same for every batch: FONTS prototypes,
decoder parameters), so one compiled attack serves every batch."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from manifold_robustness import transforms
from manifold_robustness.attacks.engine import Space
from manifold_robustness.manifolds import fonts as true_fonts


def image_space() -> Space:
    """v = the image itself (batch["image"]: float32[B, H, W, C]), box [0, 1]."""
    return Space(
        name="image",
        start=lambda batch, ctx: batch["image"],
        decode=lambda v, batch, ctx: v,
        box=lambda batch, ctx: (jnp.float32(0.0), jnp.float32(1.0)),
    )


def true_manifold_space(ranges: transforms.TransformRanges) -> Space:
    """v = θ of FONTS (batch["theta"]: float32[B, 6], batch["font_id"], batch["label"]); the image is
    render(context["prototypes"][font, class], θ); box = the dataset's θ ranges.  Font and class
    stay fixed, so the true label cannot change."""
    low, high = ranges.arrays()
    return Space(
        name="true_manifold",
        start=lambda batch, ctx: batch["theta"],
        decode=lambda v, batch, ctx: true_fonts.render(ctx["prototypes"], batch["font_id"], batch["label"], v),
        box=lambda batch, ctx: (low, high),
    )


def learned_manifold_space(decode_fn: Callable, bound: float = 2.0, field: str = "latent") -> Space:
    """v = the latent code z (batch[field], default "latent": float32[B, d]); the image is
    ``decode_fn(context, z, labels)`` (class-specific decoders route by label); box [−bound, bound]^d
    (the truncated prior of the VAE-GANs).  Written against the callable: any decoder works."""
    return Space(
        name="learned_manifold",
        start=lambda batch, ctx: batch[field],
        decode=lambda v, batch, ctx: decode_fn(ctx, v, batch["label"]),
        box=lambda batch, ctx: (jnp.float32(-bound), jnp.float32(bound)),
    )


def transformation_space(ranges: transforms.TransformRanges) -> Space:
    """v = affine parameters t starting at the identity; the image is affine(batch["image"], t);
    box = the dataset's transformation ranges."""
    low, high = ranges.arrays()
    return Space(
        name="transformation",
        start=lambda batch, ctx: transforms.identity_theta(batch["image"].shape[0]),
        decode=lambda v, batch, ctx: transforms.affine_transform(batch["image"], v),
        box=lambda batch, ctx: (low, high),
    )


def clean_images(space: Space, batch, context=None) -> jax.Array:
    """g(v₀): what the classifier sees before the attack (for latent spaces, the reconstruction)."""
    return space.decode(space.start(batch, context), batch, context)
