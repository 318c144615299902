"""The true FONTS manifold: a perfect, differentiable decoder (font, class, θ) → image.

Latent variables are the font id and class (discrete, held fixed by attacks and projections) and
the six affine parameters θ.  Prototypes are gathered by index — never the original code's dense
one-hot product over all 10 000 prototypes — and warped by :func:`transforms.affine_transform`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from manifold_robustness import transforms


def render(prototypes, font_ids, classes, theta) -> jax.Array:
    """Render FONTS images.

    prototypes: float32[F, K, H, W, C] in [0, 1] (font, class, image) or uint8 of the same shape;
    font_ids, classes: int[B]; theta: float32[B, 6].  Returns float32[B, H, W, C] in [0, 1].
    Differentiable in ``theta`` (and in float prototypes).
    """
    prototypes = jnp.asarray(prototypes)
    if prototypes.ndim != 5:
        raise ValueError(f"prototypes must be [fonts, classes, H, W, C]; got shape {tuple(prototypes.shape)}")
    font_ids = jnp.asarray(font_ids)
    classes = jnp.asarray(classes)
    if font_ids.ndim != 1 or classes.shape != font_ids.shape:
        raise ValueError(
            f"font_ids and classes must be int[B] of equal length; got {tuple(font_ids.shape)} and {tuple(classes.shape)}"
        )
    return _render(prototypes, font_ids, classes, jnp.asarray(theta))


@jax.jit
def _render(prototypes, font_ids, classes, theta) -> jax.Array:
    # One program per shape for eager callers (see transforms._warp); inlined under a caller's jit.
    glyphs = prototypes[font_ids, classes]
    if glyphs.dtype == jnp.uint8:
        glyphs = glyphs.astype(jnp.float32) / 255.0
    return transforms.affine_transform(glyphs, theta)
