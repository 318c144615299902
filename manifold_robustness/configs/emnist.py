"""EMNIST digits (paper §6): 240k / 40k images, learned manifold from class-specific VAE-GANs.

The files cannot be downloaded here: put the official gzip idx files in ``data.source_dir`` or
``$MANIFOLD_ROBUSTNESS_EMNIST`` (the loader's error lists them).

Presets: ``paper`` — N ∈ {250 … 40k}, normal / regular / on-learned-manifold / transformation
adversarial training and augmentation, 5 seeds, class VAE-GANs for 30 epochs (λ = 2.5; classes
0, 1, 8: 2.75, 5.6, 2.25).  Expected (paper Figs. 5–6): test error from ~7 % to ~1 %,
on-learned success ~0.06 → ~0.025, normal training's regular success ~0.8–0.9 for every N.
Its image-space attacks are the supplement's four (``eval.attacks``): L∞, L2 PGD (ε = 1.5), C&W L2
(120 iterations) and the L∞ attack transferred from a normally trained source model (10k images,
20 epochs, trained once into the results root); they cost about 3.6× the L∞ attack alone
(200 + 200 + 120 + 200 iteration-restarts per image, plus the source's training).
``quick`` — N ∈ {500, 2000, 10000}, normal / regular AT / on-learned AT, one seed, VAE-GANs for
2 epochs, 10 inner iterations, 500 attacked images.
``tiny`` — for tests and notebooks (the shape of ``fashion_mnist:tiny``): N ∈ {100, 200}, normal /
on-learned AT, 2 epochs, 3 inner iterations, 20 attacked images with 2 restarts of 40
iterations, VAE-GANs of 8 channels for 1 epoch, distances on 40 test images.  Numbers mean
nothing; on a generated 300-image folder it runs in about a minute.

Both measure claim 1 on the learned manifold: distances of test images and their regular and
on-learned adversarial examples by projection onto the class VAE-GANs, for the normal model at
the largest N (1000 test images; ``quick``: 300), and beside them by the k-NN local subspace (50
neighbours among the training images in a 40-component PCA space, "point" and "mean" centring).
"""

from manifold_robustness.runner import config as _config

PRESETS = ("paper", "quick", "tiny")


def get_config(preset: str = "paper"):
    c = _config.base("emnist")
    if preset == "quick":
        _config.quick(c, ("normal", "regular_at", "on_learned_manifold_at"), (500, 2000, 10000), inner_iterations=10)
        c.distances.examples = 300
        c.vaegan.epochs = 2
    elif preset == "tiny":
        _config.tiny(c, ("normal", "on_learned_manifold_at"), test_examples=100, distance_examples=40)
        c.vaegan.epochs = 1
        c.vaegan.channels = 8
    elif preset != "paper":
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return c
