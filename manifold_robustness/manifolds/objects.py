"""The three manifolds (see :mod:`.protocol`): FONTS' true one, the class-specific learned one and
the class-agnostic learned one.

>>> m = TrueFontsManifold(prototypes, ranges)             # or LearnedManifold(vae, variables)
>>> batch = {"image": x, "label": y, **m.batch_fields(test)}   # θ and font id / a latent code
>>> res = m.attack(iterations=40)(logits_fn, batch, key, m.context)
>>> m.project(res.x[0], batch, key, m.context).distance

Each is frozen data (its decoder's constants) plus pure functions of arrays; only
:meth:`build` (each class's constructor from a :class:`Setup`) does I/O: FONTS' prototypes from
the data cache, the VAE-GANs trained or resumed from their checkpoints.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from manifold_robustness import attacks, transforms
from manifold_robustness.attacks import spaces
from manifold_robustness.manifolds import projection, vaegan
from manifold_robustness.manifolds.protocol import KINDS as _KINDS

__all__ = ["Setup", "TrueFontsManifold", "LearnedManifold", "AgnosticManifold", "KINDS"]


@dataclasses.dataclass(frozen=True)
class Setup:
    """What building a manifold may use (shell): the dataset's name, the true manifold's
    prototypes loader, a loader of the training split (uint8; ``full_train(limit)``: its first
    ``limit`` images, None = all), the VAE-GAN settings (``channels``, ``latent_dim``, ``epochs``:
    0 = the paper's; ``examples``: 0 = the whole split), a folder for checkpoints,
    progress bars and a ``say`` for one-line messages."""

    dataset: str
    ranges: transforms.TransformRanges
    prototypes: Callable[[], np.ndarray] | None = None
    full_train: Callable[[], Any] | None = None
    vaegan: Mapping = dataclasses.field(default_factory=dict)
    root: Path | None = None
    progress: bool = False
    say: Callable[[str], None] = lambda text: None


@dataclasses.dataclass(frozen=True, eq=False)
class TrueFontsManifold:
    """FONTS' true manifold: render(prototypes[font, class], θ), θ in the dataset's ranges.

    prototypes: float32[F, 10, H, W, 1] in [0, 1]; the batch carries ``theta`` float32[B, 6] and
    ``font_id`` int32[B].  Distance: :func:`projection.project_true` from the example's own θ;
    angle: to the renderer's tangent space."""

    prototypes: Any
    ranges: transforms.TransformRanges

    kind = "true"
    title = _KINDS["true"].title
    attack_key = _KINDS["true"].attack_key
    attack_name = "on_true_manifold"
    random_name = "random_true_latent"
    fields = ("theta", "font_id")
    default_eta = 0.3
    trained = False  # nothing to train: its attack runs whenever the dataset has it
    switch = None
    missing_hint = "FONTS prototypes"
    projection_config = projection.ProjectionConfig()  # what :meth:`project` runs unless told otherwise

    @property
    def context(self) -> dict:
        return {"prototypes": self.prototypes}

    @functools.cached_property
    def space(self) -> attacks.Space:
        return spaces.true_manifold_space(self.ranges)

    def batch_fields(self, dataset) -> dict[str, np.ndarray]:
        if dataset.theta is None or dataset.font_ids is None:
            raise ValueError(f"the true manifold needs a FONTS split with theta and font_ids; {dataset.name} has none")
        return {"theta": np.asarray(dataset.theta, np.float32), "font_id": np.asarray(dataset.font_ids, np.int32)}

    def attack(self, eps: float | None = None, **kw) -> attacks.Attack:
        return attacks.make(self.attack_name, eps=self.default_eta if eps is None else eps, space=self.space, **kw)

    def random_baseline(self, eps: float | None = None, **kw) -> attacks.Attack:
        return attacks.make(self.random_name, eps=self.default_eta if eps is None else eps, space=self.space, **kw)

    def project(self, x_tilde, batch: Mapping, key, context=None,
                config: projection.ProjectionConfig | None = None) -> projection.Projection:
        ctx = self.context if context is None else context
        return projection.project_true(ctx["prototypes"], batch["font_id"], batch["label"], x_tilde, batch["theta"], key,
                                       ranges=self.ranges, config=config or self.projection_config)

    def tangent_angle(self, batch: Mapping, delta, context=None) -> jax.Array:
        ctx = self.context if context is None else context
        return projection.true_tangent_angle(ctx["prototypes"], batch["font_id"], batch["label"], batch["theta"], delta)

    @classmethod
    def build(cls, setup: Setup) -> "TrueFontsManifold":
        if setup.prototypes is None:
            raise ValueError(f"{setup.dataset} has no true manifold (no prototypes to render from)")
        return cls(jnp.asarray(setup.prototypes()), setup.ranges)


@dataclasses.dataclass(frozen=True, eq=False)
class LearnedManifold:
    """The learned manifold of class-specific VAE-GANs: decoder_y(z), z in [−2, 2]^d.

    The batch carries ``latent`` float32[B, d], each example's encoding by its class model (its
    decoding, the reconstruction, is what the attack starts from).  Distance:
    :func:`projection.project_learned` from that encoding; no tangent angle."""

    vae: vaegan.VAEGAN
    variables: Any

    kind = "learned"
    title = _KINDS["learned"].title
    attack_key = _KINDS["learned"].attack_key
    attack_name = "on_learned_manifold"
    random_name = "random_learned_latent"
    field = "latent"
    default_eta = 0.3
    classes = "all"  # what vaegan_train.train trains: one model per class (None: one on all classes)
    store_name = "vaegan"  # checkpoint folder under a results root
    trained = True
    switch = "on_learned"  # the config flag under ``vaegan`` that prepares it without a method needing it
    projection_config = projection.LEARNED_CONFIG  # what :meth:`project` runs unless told otherwise
    missing_hint = "VAE-GANs (vaegan.on_learned=True in its config, or an on-learned method)"

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.field,)

    @property
    def context(self) -> Any:
        return self.variables

    @property
    def decode_fn(self):
        return vaegan.decoder_fn(self.vae)

    @functools.cached_property
    def space(self) -> attacks.Space:
        return spaces.learned_manifold_space(self.decode_fn, vaegan.LATENT_BOX, field=self.field)

    def batch_fields(self, dataset) -> dict[str, np.ndarray]:
        codes = vaegan.latent_codes(self.vae, self.variables, dataset.images, dataset.labels)
        return {self.field: np.asarray(codes, np.float32)}

    def attack(self, eps: float | None = None, **kw) -> attacks.Attack:
        return attacks.make(self.attack_name, eps=self.default_eta if eps is None else eps, space=self.space, **kw)

    def random_baseline(self, eps: float | None = None, **kw) -> attacks.Attack:
        return attacks.make(self.random_name, eps=self.default_eta if eps is None else eps, space=self.space, **kw)

    def project(self, x_tilde, batch: Mapping, key, context=None,
                config: projection.ProjectionConfig | None = None) -> projection.Projection:
        ctx = self.context if context is None else context
        return projection.project_learned(self.decode_fn, ctx, x_tilde, batch["label"], key, z_init=batch[self.field],
                                          bound=vaegan.LATENT_BOX, config=config or self.projection_config)

    def tangent_angle(self, batch: Mapping, delta, context=None) -> None:
        return None

    @classmethod
    def build(cls, setup: Setup) -> "LearnedManifold":
        from manifold_robustness.manifolds import vaegan_train

        v = dict(setup.vaegan)
        overrides = {k: int(v[k]) for k in ("channels", "latent_dim") if k in v}
        vcfg = vaegan.VAEGANConfig.paper(setup.dataset, **overrides)
        if v.get("epochs"):
            vcfg = dataclasses.replace(vcfg, train=dataclasses.replace(vcfg.train, epochs=int(v["epochs"])))
        examples = int(v.get("examples") or 0)
        if examples < 0:
            raise ValueError(f"vaegan.examples must be >= 0 (0: the whole training split); got {examples}")
        folder = None if setup.root is None else Path(setup.root) / cls.store_name
        on = f"the first {examples} training images" if examples else "the whole training split"
        setup.say(f"{cls.title} of {setup.dataset}: {vcfg.train.epochs} epochs on {on}"
                  + (f" (checkpoints in {folder})" if folder else ""))
        result = vaegan_train.train(setup.full_train(examples or None), vcfg, classes=cls.classes,
                                    checkpoint_dir=None if folder is None else str(folder), progress=setup.progress)
        return cls(result.vae, result.variables)


class AgnosticManifold(LearnedManifold):
    """The class-agnostic learned manifold (supplement): one VAE-GAN on all classes, decoder(z);
    the batch carries ``data_latent``; the paper's budget here is η = 0.1."""

    kind = "agnostic"
    title = _KINDS["agnostic"].title
    attack_key = _KINDS["agnostic"].attack_key
    attack_name = "on_data_manifold"
    field = "data_latent"
    default_eta = 0.1
    classes = None
    store_name = "vaegan_agnostic"
    switch = None
    missing_hint = "VAE-GANs of the class-agnostic manifold (a method that needs it, e.g. on_data_manifold_at)"


KINDS = {cls.kind: cls for cls in (TrueFontsManifold, LearnedManifold, AgnosticManifold)}
