"""CelebA, gender (paper §6): 56×48×3 faces, binary label "Male".

The files cannot be downloaded here: put ``img_align_celeba/``, ``list_attr_celeba.txt`` and the
partition file in ``data.source_dir`` or ``$MANIFOLD_ROBUSTNESS_CELEBA``.

Presets: ``paper`` — N ∈ {250 … 40k}, normal / regular / transformation adversarial training and
augmentation, 5 seeds.  The paper reports CelebA's regular robustness as the mean L∞ norm of
successful perturbations (``attacks.regular.mean_linf``).  The paper trains no on-learned models
on CelebA, so its presets leave the learned manifold off; it runs when asked for: ``-o
methods=normal,on_learned_manifold_at`` (or ``-o vaegan.on_learned=True`` for the on-learned
attack alone) trains the class VAE-GANs (4 conv layers at 56×48, λ = 3, 30 epochs) first.  Their
latent size is ``vaegan.latent_dim``: 10 as in the paper (the default), 25 as in the original
code.  ``quick`` — N ∈ {500, 2000}, normal / regular AT, one seed, 200 attacked images.
"""

from manifold_robustness.runner import config as _config

PRESETS = ("paper", "quick")


def get_config(preset: str = "paper"):
    c = _config.base("celeba")
    c.vaegan.on_learned = False
    if preset == "quick":
        _config.quick(c, ("normal", "regular_at"), (500, 2000), attacked=200, inner_iterations=10)
    elif preset != "paper":
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return c
