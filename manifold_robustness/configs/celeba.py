"""CelebA, gender (paper §6): 56×48×3 faces, binary label "Male".

The files cannot be downloaded here: put ``img_align_celeba/``, ``list_attr_celeba.txt`` and the
partition file in ``data.source_dir`` or ``$MANIFOLD_ROBUSTNESS_CELEBA``.

Presets: ``paper`` — N ∈ {250 … 40k}, normal / regular / on-learned-manifold / transformation
adversarial training and augmentation, 5 seeds, every model attacked on the learned manifold of
class VAE-GANs (4 conv layers at 56×48, λ = 3, 30 epochs; trained first).  Expected (paper
Fig. 8 top): on-learned success falls with N (normal 14.9 % → 1.6 %, on-learned AT 8.8 % → ~0 %
from N = 250 to 40k), and regular robustness, reported as the mean L∞ norm of successful regular
perturbations (``attacks.regular.mean_linf``), is flat in N (~0.15; regular AT ~0.21).  The
VAE-GANs' latent size is ``vaegan.latent_dim``: 10 as in the paper (the default), 25 as in the
original code.  ``quick`` — N ∈ {500, 2000}, normal / regular AT, one seed, 200 attacked images,
no learned manifold (``-o vaegan.on_learned=True`` adds its attack, after the VAE-GANs' training).
``tiny`` — for tests and notebooks: N ∈ {100, 200}, normal / on-learned AT, 2 epochs, 3 inner
iterations, 20 attacked images with 2 restarts, the 4-layer VAE-GANs at 8 channels for 1 epoch.
Numbers mean nothing.
"""

from manifold_robustness.runner import config as _config

PRESETS = ("paper", "quick", "tiny")


def get_config(preset: str = "paper"):
    c = _config.base("celeba")
    if preset == "quick":
        _config.quick(c, ("normal", "regular_at"), (500, 2000), attacked=200, inner_iterations=10)
        c.vaegan.on_learned = False
    elif preset == "tiny":
        _config.tiny(c, ("normal", "on_learned_manifold_at"), test_examples=20, distance_examples=1)
        c.vaegan.epochs = 1
        c.vaegan.channels = 8
    elif preset != "paper":
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return c
