"""The adversarial training family as batch builders (paper §6.3–6.4; reference digest code §6.2).

Every method splits the batch of 100 into a clean part and adversarial part(s) and returns their
concatenation with loss weights that make the loss the mean of the parts' mean losses:

* ``regular_at``                50 clean + 50 regular L∞ adversarial (ε = 0.3)
* ``regular_at_full``           100 adversarial;  ``regular_at_weak``: the inner attack stops at
                                the first success (eval mode) instead of running all iterations
* ``on_true_manifold_at``       50 clean + 50 on-true-manifold adversarial (FONTS θ, η = 0.3)
* ``on_learned_manifold_at``    50 clean + 50 decoded adversarial latents (class VAE-GANs, [−2, 2]^d)
* ``on_data_manifold_at``       the same through a class-agnostic decoder with η = 0.1
* ``adversarial_transformation`` 50 clean + 50 adversarially transformed (from the identity,
                                ‖t‖∞ ≤ 0.3 in the dataset's ranges).  On FONTS the transformations
                                *are* the true manifold, so this equals ``on_true_manifold_at``
                                up to where t starts (identity vs the example's own θ)
* ``combined_true`` / ``combined_learned`` / ``combined_transformation``
                                50 clean + 25 regular + 25 on-manifold (true, learned, transformation)
* baselines ``random_image_noise``, ``random_true_latent``, ``random_learned_latent``: the same
  balls sampled uniformly, no optimisation (and ``augment`` in :mod:`.methods`)

The inner attacks are the engine's (:mod:`manifold_robustness.attacks`) in *train* mode — all 40
iterations, highest-loss iterate kept — with Adam lr 0.005 and one restart, on the model in eval
mode (batch norm with running statistics), as the original.  They run inside the jitted epoch:
``lax.scan`` over batches, the attack's ``while_loop`` inside.  For learned-manifold methods the
batch carries ``latent`` codes (the class encoders' means of the training images, computed once
and passed to ``train(..., extra_arrays={"latent": z})``), and the adversarial half is decoded, so
its clean counterpart is the reconstruction, as in the original.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from manifold_robustness import attacks
from manifold_robustness.training.methods import MethodContext, halves, mixture, register

VAEGAN_HINT = (
    "train the class-specific VAE-GANs first (manifold_robustness.manifolds.vaegan_train.train(...), "
    "encode the training images with codes = vaegan.latent_codes(vae, variables, images, labels)) and pass "
    "MethodContext(decode_fn=vaegan.decoder_fn(vae), arrays={'decoder': variables}) plus extra_arrays={'latent': codes}"
)


def _attack_kwargs(context: MethodContext, **defaults) -> dict:
    """One restart in train mode; iterations and lr are the attack's own (the paper's 40 and
    0.005) unless ``context.attack`` sets them."""
    return {"restarts": 1, "mode": "train", **defaults, **context.attack}


def _check_budget(name: str, value) -> None:
    if jnp.ndim(value) != 0:
        raise ValueError(f"{name} must be a scalar budget for training (one per batch row is not supported); got shape {jnp.shape(value)}")
    if float(value) < 0:
        raise ValueError(f"{name} must be >= 0; got {value}")


def _regular(context: MethodContext, weak: bool = False) -> attacks.Attack:
    _check_budget("eps", context.eps)
    kw = _attack_kwargs(context, **({"mode": "eval"} if weak else {}))
    return attacks.make("linf", eps=context.eps, **kw)


def _true(context: MethodContext, random: bool = False) -> attacks.Attack:
    _check_budget("eta", context.eta)
    if context.manifold is not None:
        return _through(context.manifold, context, random)
    if context.arrays is None or "prototypes" not in context.arrays:
        raise ValueError(
            "on-true-manifold training needs the FONTS prototypes (arrays={'prototypes': data.fonts_prototypes(config)}); "
            "only FONTS has a known manifold — on other datasets use on_learned_manifold_at or adversarial_transformation"
        )
    if random:
        return attacks.make("random_true_latent", eps=context.eta, ranges=context.ranges, restarts=1)
    return attacks.make("on_true_manifold", eps=context.eta, ranges=context.ranges, **_attack_kwargs(context))


def _through(manifold, context: MethodContext, random: bool, eta=None) -> attacks.Attack:
    """The attack of a method through its manifold object (arrays = the manifold's context)."""
    eta = context.eta if eta is None else eta
    if random:
        return manifold.random_baseline(eta, restarts=1)
    return manifold.attack(eta, **_attack_kwargs(context))


def _learned(context: MethodContext, eta=None, random: bool = False) -> attacks.Attack:
    eta = context.eta if eta is None else eta
    _check_budget("eta", eta)
    if context.manifold is not None:
        return _through(context.manifold, context, random, eta)
    if context.decode_fn is None or context.arrays is None or "decoder" not in context.arrays:
        raise ValueError(f"learned-manifold training needs a trained decoder: {VAEGAN_HINT}")
    decode = lambda arrays, z, y: context.decode_fn(arrays["decoder"], z, y)  # noqa: E731
    if random:
        return attacks.make("random_learned_latent", decode_fn=decode, eps=eta, restarts=1)
    return attacks.make("on_learned_manifold", decode_fn=decode, eps=eta, **_attack_kwargs(context))


def _transformation(context: MethodContext) -> attacks.Attack:
    _check_budget("eta", context.eta)
    return attacks.make("transformation", eps=context.eta, ranges=context.ranges, **_attack_kwargs(context))


def _random_image(context: MethodContext) -> attacks.Attack:
    _check_budget("eps", context.eps)
    return attacks.make("random_image", eps=context.eps, restarts=1)


def _adversarial_part(attack: attacks.Attack, context: MethodContext, variables, part, key, arrays):
    """Run ``attack`` on a batch part with the model in eval mode → (images, labels, mask)."""
    logits_fn = context.classifier.logits_fn(variables)
    result = attack(logits_fn, part, key, arrays)
    return jax.lax.stop_gradient(result.x[0]), part["label"], part["mask"]


def _half_builder(make_attack):
    """50 % clean + 50 % from one attack."""

    def factory(context: MethodContext):
        attack = make_attack(context)

        def build(variables, batch, key, arrays):
            clean, other = halves(batch)
            adv = _adversarial_part(attack, context, variables, other, key, arrays)
            return mixture([(clean["image"], clean["label"], clean["mask"]), adv])

        return build

    return factory


def _combined_builder(make_second):
    """50 % clean + 25 % regular + 25 % from a second (on-manifold) attack."""

    def factory(context: MethodContext):
        regular, second = _regular(context), make_second(context)

        def build(variables, batch, key, arrays):
            clean, rest = halves(batch)
            reg, man = halves(rest)
            k1, k2 = jax.random.split(key)
            parts = [
                (clean["image"], clean["label"], clean["mask"]),
                _adversarial_part(regular, context, variables, reg, k1, arrays),
                _adversarial_part(second, context, variables, man, k2, arrays),
            ]
            return mixture(parts)

        return build

    return factory


register("regular_at", "50% clean + 50% regular L∞ adversarial (ε 0.3, 40 Adam iterations, highest-loss iterate)")(
    _half_builder(_regular)
)
register("regular_at_weak", "regular_at whose inner attack stops at the first success")(
    _half_builder(lambda c: _regular(c, weak=True))
)


@register("regular_at_full", "100% regular L∞ adversarial examples (Madry et al.)")
def regular_at_full(context: MethodContext):
    attack = _regular(context)

    def build(variables, batch, key, arrays):
        return mixture([_adversarial_part(attack, context, variables, batch, key, arrays)])

    return build


register("on_true_manifold_at", "FONTS: 50% clean + 50% on-true-manifold adversarial (θ + ζ, ‖ζ‖∞ ≤ 0.3)", needs="true")(_half_builder(_true))
register("on_learned_manifold_at", "50% clean + 50% adversarial latents decoded by the class VAE-GANs (η 0.3, z in [−2, 2]^d)",
         needs="learned")(
    _half_builder(_learned)
)
register("on_data_manifold_at", "50% clean + 50% adversarial latents of a class-agnostic VAE-GAN (η 0.1)", needs="agnostic")(
    _half_builder(lambda c: _learned(c, eta=0.1))
)
register("adversarial_transformation", "50% clean + 50% adversarial affine transformations (‖t‖∞ ≤ 0.3 from the identity)")(
    _half_builder(_transformation)
)
register("combined_true", "50% clean + 25% regular + 25% on-true-manifold adversarial (FONTS)", needs="true")(_combined_builder(_true))
register("combined_learned", "50% clean + 25% regular + 25% on-learned-manifold adversarial", needs="learned")(_combined_builder(_learned))
register("combined_transformation", "50% clean + 25% regular + 25% adversarial transformations")(
    _combined_builder(_transformation)
)
register("random_image_noise", "baseline: 50% clean + 50% uniform L∞ noise (ε 0.3)")(_half_builder(_random_image))
register("random_true_latent", "baseline: 50% clean + 50% uniformly perturbed θ (η 0.3, FONTS)", needs="true")(
    _half_builder(lambda c: _true(c, random=True))
)
register("random_learned_latent", "baseline: 50% clean + 50% uniformly perturbed latents (η 0.3)", needs="learned")(
    _half_builder(lambda c: _learned(c, random=True))
)
