"""What each experiment dataset is, as data: its title, the manifolds it has, its transformation
ranges, its config options and how to load a split from them.

>>> spec = specs.get("fonts")
>>> spec.manifolds                        # ("true", "learned", "agnostic")
>>> spec.load("train", 1000, {"num_fonts": 100, ...})

The runner, the CLI and the report read these instead of branching on a dataset's name.  The
manifold kinds are those of :mod:`manifold_robustness.manifolds.protocol`; the paper's grid of
each dataset (``paper_methods``) and what its ``paper`` preset attacks by default
(``attacked``) come from the paper's §6 and Figs. 3–8.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from manifold_robustness import transforms

__all__ = ["DatasetSpec", "SPECS", "get", "fonts_config"]

_FONTS_FIELDS = ("num_fonts", "repetitions", "test_repetitions", "split", "difficulty", "seed", "font_dirs",
                 "selection", "min_readability", "min_survival")
# the config options of FONTS whose defaults (the paper's) are FontsConfig's
_FONTS_OPTIONS = ("num_fonts", "repetitions", "test_repetitions", "difficulty", "seed", "selection",
                  "min_readability", "min_survival")


def _fonts_defaults() -> dict:
    from manifold_robustness.data.fonts import FontsConfig

    default = FontsConfig()
    return {k: getattr(default, k) for k in _FONTS_OPTIONS}


def fonts_config(options: Mapping):
    """A :class:`~manifold_robustness.data.FontsConfig` from config options (``num_fonts`` 0 = all)."""
    from manifold_robustness.data.fonts import FontsConfig

    kw = {k: options[k] for k in _FONTS_FIELDS if k in options}
    if "num_fonts" in kw:
        kw["num_fonts"] = kw["num_fonts"] or None
    if kw.get("font_dirs") is not None:
        kw["font_dirs"] = tuple(kw["font_dirs"]) or None
    return FontsConfig(**kw)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One experiment dataset.  ``manifolds``: the kinds it has, in the order a setting lists
    them (its own best first); ``options``: the config's ``data`` defaults (the paper's);
    ``ranges(options)``: the box of adversarial transformations and augmentation (FONTS: its
    difficulty's θ ranges); ``paper_methods``: the
    paper's grid; ``attacked``: the manifolds whose attacks the paper preset runs; ``distances``:
    whether the paper preset measures distances (normally trained models); ``knn_centers``: the
    k-NN local subspace centrings measured beside the manifold's own distance (paper §5.4: where
    the manifold is only approximated, "point" in the main paper, "mean" in the supplement);
    ``paper_attacks``: the image-space evaluation attacks of the paper preset (``eval.attacks``;
    supplement E: L2 PGD, C&W L2 and transfer beside L∞ on FONTS, EMNIST and Fashion-MNIST)."""

    name: str
    title: str
    manifolds: tuple[str, ...]
    options: Mapping[str, Any]
    ranges: Callable[[Mapping], transforms.TransformRanges]
    paper_methods: tuple[str, ...]
    attacked: tuple[str, ...]
    distances: bool = False
    knn_centers: tuple[str, ...] = ()
    paper_attacks: tuple[str, ...] = ("linf", "l2", "cw_l2", "transfer")
    describe: Callable[[Mapping], str | None] | None = None  # how the data was built, in words

    def load_kwargs(self, options: Mapping) -> dict:
        """Keyword arguments of :func:`manifold_robustness.data.load` for these options."""
        if "num_fonts" in self.options:
            return {"config": fonts_config(options)}
        return {"source_dir": options.get("source_dir") or None}

    def load(self, split: str, limit: int | None, options: Mapping, *, dtype=np.float32, data_dir=None):
        from manifold_robustness import data

        return data.load(self.name, split, limit, dtype=dtype, data_dir=data_dir, **self.load_kwargs(options))

    def prototypes(self, options: Mapping):
        """The true manifold's prototypes loader (None for a dataset without one)."""
        if "true" not in self.manifolds:
            return None
        from manifold_robustness import data

        return lambda: data.fonts_prototypes(fonts_config(options))


def _describe_fonts(options: Mapping) -> str | None:
    from manifold_robustness.data import fonts

    return fonts.describe(fonts_config(options))


_BASE = ("normal", "regular_at")
_REST = ("adversarial_transformation", "augment")


def _affine(options: Mapping) -> transforms.TransformRanges:
    return transforms.AFFINE_ATTACK_RANGES


def _fonts_ranges(options: Mapping) -> transforms.TransformRanges:
    return fonts_config(options).ranges


_AFFINE = _affine

SPECS = {s.name: s for s in (
    # paper §4: 1000 fonts × 10 letters × 112 transforms, Hard ranges; the paper attacks and trains
    # on both the true manifold and class VAE-GANs' learned one (Figs. 5-6)
    DatasetSpec("fonts", "FONTS", ("true", "learned", "agnostic"),
                _fonts_defaults(),
                _fonts_ranges, (*_BASE, "on_true_manifold_at", "on_learned_manifold_at", *_REST), ("true", "learned"),
                distances=True, describe=_describe_fonts),
    # claim 1 on a learned manifold: distances by projection onto the class VAE-GANs (paper §5.4)
    DatasetSpec("fashion_mnist", "Fashion-MNIST", ("learned", "agnostic"), dict(source_dir=""), _AFFINE,
                (*_BASE, "on_learned_manifold_at", *_REST), ("learned",), distances=True,
                knn_centers=("point", "mean")),
    DatasetSpec("emnist", "EMNIST", ("learned", "agnostic"), dict(source_dir=""), _AFFINE,
                (*_BASE, "on_learned_manifold_at", *_REST), ("learned",), distances=True,
                knn_centers=("point", "mean")),
    # Fig. 8 top: on-learned success of every method, on-learned AT among them; regular robustness
    # as the mean ‖δ‖∞ of successful perturbations
    DatasetSpec("celeba", "CelebA", ("learned", "agnostic"), dict(source_dir=""), _AFFINE,
                (*_BASE, "on_learned_manifold_at", *_REST), ("learned",),
                paper_attacks=("linf",)),
)}


def get(name: str) -> DatasetSpec:
    """The spec of experiment dataset ``name``; an unknown name lists the known ones."""
    if name not in SPECS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(SPECS)}")
    return SPECS[name]
