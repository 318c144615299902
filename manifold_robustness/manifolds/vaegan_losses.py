"""The VAE-GAN's losses and their three gradients from one forward pass (pure; one model).

Per example, with x̂ = dec(z), z = μ(x) + σ(x)·ε (one reparameterised sample) and logits
D(·) of the discriminator (paper §3.2; reference digest code §4.2):

- L_enc = λ·‖x − x̂‖₁ + KL(N(μ, σ²) ‖ N(0, I))     (KL analytic: −½ Σ(1 + log σ² − μ² − σ²))
- L_dec = λ·‖x − x̂‖₁ − log σ(D(x̂))                 (non-saturating GAN loss on reconstructions)
- L_dis = −log σ(D(x)) − log(1 − σ(D(x̂)))

Each network descends only its own loss.  The original made three sequential optimiser steps on
one graph after in-place parameter updates (``retain_graph``), which only old PyTorch allowed;
here all three gradients are taken at the same parameters from one forward pass: the networks
are run once with ``jax.vjp`` and each loss's cotangent is pulled back through the networks it
trains.  (A test checks this against three separate ``jax.grad`` calls.)

Sums vs means: the original sums every term over the batch and the pixels.  We keep per-example
*sums* over pixels and latent dimensions (that is what gives λ its meaning: the weight of one
image's L1 distance against its KL and GAN terms) and also *sum* over the batch like the original.
Adam is invariant to the scale of the loss, but the coupled L2 weight decay is not: it is added to
the gradient, so a batch mean would make it 100× stronger than the original's.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from manifold_robustness import models
from manifold_robustness.manifolds.vaegan import VAEGAN


def kl_divergence(mean: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(μ, diag σ²) ‖ N(0, I)) per example: float32[B, d] × 2 → float32[B]."""
    return -0.5 * jnp.sum(1.0 + logvar - mean**2 - jnp.exp(logvar), axis=-1)


def l1_distance(x: jax.Array, y: jax.Array) -> jax.Array:
    """‖x − y‖₁ per example: float32[B, H, W, C] × 2 → float32[B]."""
    return jnp.sum(jnp.abs(x - y), axis=(1, 2, 3))


def reparameterise(mean: jax.Array, logvar: jax.Array, eps: jax.Array) -> jax.Array:
    return mean + jnp.exp(0.5 * logvar) * eps


def _net(vae: VAEGAN, net: str, stats: Any):
    """params, input → (output, new batch_stats) of one network in training mode."""
    return lambda params, x: models.apply_graph(vae.graph(net), {"params": params, "batch_stats": stats}, x, train=True)


def gradients(vae: VAEGAN, variables: Any, x: jax.Array, eps: jax.Array, lam, encoder_gan_weight: float = 0.0):
    """Gradients of L_enc, L_dec, L_dis (summed over the batch) w.r.t. their own networks.

    variables: one model's ``{"params": {encoder, decoder, discriminator}, "batch_stats": …}`` (no
    model axis); x: float32[B, H, W, C] in [0, 1]; eps: float32[B, d] ~ N(0, I); lam: float32[].
    ``encoder_gan_weight`` adds that multiple of −log σ(D(x̂)) to L_enc (the original code used 1).
    Returns (grads shaped like ``variables["params"]``, new batch_stats (training-mode running
    statistics; the discriminator's updated by the real then the reconstructed batch), metrics:
    per-example means of ``l1`` (per pixel), ``kl``, ``gen`` (−log σ(D(x̂))), ``dis``).
    """
    params, stats = variables["params"], variables["batch_stats"]
    enc, dec = _net(vae, "encoder", stats["encoder"]), _net(vae, "decoder", stats["decoder"])
    (mean, logvar), enc_vjp, enc_stats = jax.vjp(lambda p: enc(p, x), params["encoder"], has_aux=True)
    z = reparameterise(mean, logvar, eps)
    xhat, dec_vjp, dec_stats = jax.vjp(dec, params["decoder"], z, has_aux=True)
    d_real, real_vjp, dis_stats = jax.vjp(lambda p: _net(vae, "discriminator", stats["discriminator"])(p, x), params["discriminator"], has_aux=True)
    d_fake, fake_vjp, dis_stats = jax.vjp(_net(vae, "discriminator", dis_stats), params["discriminator"], xhat, has_aux=True)

    # cotangents of the summed losses at the shared forward pass
    d_l1 = jax.grad(lambda xh: lam * jnp.sum(l1_distance(x, xh)))(xhat)
    d_gen = fake_vjp(jax.grad(lambda d: -jnp.sum(jax.nn.log_sigmoid(d)))(d_fake))[1]  # −log σ(D(x̂)) w.r.t. x̂
    g_dec, g_z = dec_vjp(d_l1 + d_gen)
    if encoder_gan_weight != 1.0:  # the encoder's own cotangent: one more pass back through the decoder
        g_z = dec_vjp(d_l1 if encoder_gan_weight == 0.0 else d_l1 + encoder_gan_weight * d_gen)[1]
    g_mean, g_logvar = jax.grad(
        lambda m, lv: jnp.sum(kl_divergence(m, lv)) + jnp.vdot(g_z, reparameterise(m, lv, eps)), argnums=(0, 1)
    )(mean, logvar)
    g_enc = enc_vjp((g_mean, g_logvar))[0]
    g_real = real_vjp(jax.grad(lambda d: -jnp.sum(jax.nn.log_sigmoid(d)))(d_real))[0]
    g_fake = fake_vjp(jax.grad(lambda d: -jnp.sum(jax.nn.log_sigmoid(-d)))(d_fake))[0]
    g_dis = jax.tree.map(jnp.add, g_real, g_fake)

    grads = {"encoder": g_enc, "decoder": g_dec, "discriminator": g_dis}
    new_stats = {"encoder": enc_stats, "decoder": dec_stats, "discriminator": dis_stats}
    pixels = x.shape[1] * x.shape[2] * x.shape[3]
    metrics = {
        "l1": jnp.mean(l1_distance(x, xhat)) / pixels,
        "kl": jnp.mean(kl_divergence(mean, logvar)),
        "gen": -jnp.mean(jax.nn.log_sigmoid(d_fake)),
        "dis": -jnp.mean(jax.nn.log_sigmoid(d_real) + jax.nn.log_sigmoid(-d_fake)),
    }
    return grads, new_stats, metrics

