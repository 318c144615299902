"""Fashion-MNIST (paper §6, Figs. 5–6): learned manifold from class-specific VAE-GANs.

Presets: ``paper`` — N ∈ {250 … 40k}, normal / regular / on-learned-manifold / transformation
adversarial training and augmentation, 5 seeds, 1000 / 2500 attacked test images, class VAE-GANs
with the paper's 60 epochs (λ = 2.75).  Expected (paper Fig. 5): on-learned success falls from
~0.5 to ~0.2 as test error falls from ~0.23 to ~0.11; normal training's regular success stays
~0.8–0.9.  Cost: the VAE-GANs alone take ~3 h on 2 CPU cores (``benchmarks/vaegan_throughput.py``);
the classifier grid about two days there; use a GPU.
``quick`` — N ∈ {500, 2000, 10000}, normal / regular AT / on-learned AT, one seed, VAE-GANs for
3 epochs, 10 inner iterations, 500 attacked images: ~40 minutes on 2 CPU cores.

The idx files come from Debian's ``dataset-fashion-mnist`` (installed by the set-up) or from
``data.source_dir`` / ``$MANIFOLD_ROBUSTNESS_FASHION_MNIST``.
"""

from manifold_robustness.runner import config as _config

PRESETS = ("paper", "quick")


def get_config(preset: str = "paper"):
    c = _config.base("fashion_mnist")
    if preset == "quick":
        _config.quick(c, ("normal", "regular_at", "on_learned_manifold_at"), (500, 2000, 10000), inner_iterations=10)
        c.vaegan.epochs = 3
    elif preset != "paper":
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return c
