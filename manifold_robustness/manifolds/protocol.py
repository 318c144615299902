"""What a manifold is to the rest of the library, and the one rule that refuses a missing one.

A manifold (DESIGN principle 2b) is an object that owns everything that differs between the
true FONTS manifold and the learned ones, so the runner, the CLI and the report can loop over a
setting's manifolds without naming any:

- ``kind``: its name among a dataset's manifolds (``"true"``, ``"learned"``, ``"agnostic"``);
  ``title``: what it is, in words; ``attack_key``: the key its attack's results are stored under
  (``"on_true"``, ``"on_learned"``, ``"on_data"``) — these two are in :data:`KINDS`, which the
  store and the report read without building a manifold;
- ``fields``: the per-example batch fields it reads beside ``image`` and ``label`` (θ and font
  id; a latent code), and :meth:`batch_fields` to compute them for a dataset split;
- ``context``: the pytree of large constants its decoder reads (prototypes, VAE-GAN variables),
  passed to compiled programs as an argument;
- ``space``: its attack parameterisation (:class:`attacks.Space`: start, decode, box), from
  which :meth:`attack` builds the on-manifold attack and :meth:`random_baseline` the uniform one;
- :meth:`project`: its distance measure, the projection of images onto it (claim 1), and
  :meth:`tangent_angle`, the angle of a perturbation to it where the manifold knows its tangent.

Datasets declare the kinds they have (``data.specs``); training methods and attacks declare the
kind they need (``needs=`` on their registry entries); :func:`require` is the one rule that
refuses a method or attack the dataset cannot serve.  The implementations are in
:mod:`.objects`.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Protocol, Sequence, runtime_checkable

import jax

__all__ = ["Manifold", "Kind", "KINDS", "KIND_TITLES", "require", "missing"]


class Kind(NamedTuple):
    """What the store and the report know of a manifold kind without building one: its title
    (the words errors use), the key its attack's results are stored under, and the on-manifold
    adversarial training that claim 3 compares with normal training."""

    title: str
    attack_key: str
    adversarial_training: str


KINDS = {
    "true": Kind("FONTS' true manifold (the renderer of font, letter and θ)", "on_true", "on_true_manifold_at"),
    "learned": Kind("the learned manifold of class-specific VAE-GANs", "on_learned", "on_learned_manifold_at"),
    "agnostic": Kind("the class-agnostic learned manifold (one VAE-GAN on all classes)", "on_data", "on_data_manifold_at"),
}
KIND_TITLES = {k: v.title for k, v in KINDS.items()}


@runtime_checkable
class Manifold(Protocol):
    kind: str
    title: str
    attack_key: str
    fields: tuple[str, ...]
    default_eta: float

    @property
    def context(self) -> Any: ...

    @property
    def space(self) -> Any: ...

    def batch_fields(self, dataset) -> dict: ...

    def attack(self, eps: float | None = None, **kw) -> Any: ...

    def random_baseline(self, eps: float | None = None, **kw) -> Any: ...

    def project(self, x_tilde: jax.Array, batch: Mapping, key: jax.Array, context: Any = None) -> Any: ...

    def tangent_angle(self, batch: Mapping, delta: jax.Array, context: Any = None) -> jax.Array | None: ...


def _describe(kinds: Sequence[str]) -> str:
    return "; ".join(f"{k} ({KIND_TITLES.get(k, k)})" for k in kinds) or "none"


def missing(needs: str | None, kinds: Sequence[str]) -> bool:
    """Whether something that ``needs`` a manifold kind (None: no manifold) lacks it among ``kinds``."""
    return needs is not None and needs not in kinds


def require(needs: str | None, kinds: Sequence[str], dataset: str, what: str) -> None:
    """Refuse ``what`` (e.g. "method on_true_manifold_at") when it needs a manifold kind that the
    dataset's ``kinds`` lack: the error names what it needs and what the dataset has."""
    if missing(needs, kinds):
        raise ValueError(f"{what} cannot run on {dataset!r}: it would need {KIND_TITLES.get(needs, needs)}, and "
                         f"{dataset!r} has the manifolds: {_describe(kinds)}")
