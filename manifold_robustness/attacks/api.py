"""The paper's attacks by name, each a thin row over the engine, with the paper's defaults.

>>> atk = attacks.make("linf")                       # ε = 0.3, Adam lr 0.005, 40 iterations, 5 restarts
>>> f = jax.jit(lambda v, batch, key: atk(clf.logits_fn(v), batch, key))
>>> res = f(variables, {"image": x, "label": y}, jax.random.key(0))
>>> attacks.success_rate(res.success, attacks.correct(clf.logits_fn(variables), x, y))

Batch keys per attack: image attacks read ``image``; ``on_true_manifold`` reads ``theta``,
``font_id`` and needs ``context={"prototypes": float32[F, 10, H, W, 1]}``; ``on_learned_manifold``
reads ``latent`` and calls ``decode_fn(context, z, labels)``; ``transformation`` reads ``image``.
All read ``label``.

Checks: an attack called with concrete inputs validates them first (:func:`check_inputs`: label
range, image range and NaN, the fields the attack reads, ε).  Under a caller's own ``jit`` the
values are tracers and these checks are skipped (a label of 10 or a NaN image then runs as it is),
so a caller who jits an attack should call ``check_inputs`` on each concrete batch beforehand, as
the runner does for every chunk it attacks; a learned-manifold attack's ``check_inputs`` also runs
the decoder on the concrete labels, so a label without a trained model is refused there.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import jax
import numpy as np
import optax

from manifold_robustness import models, transforms
from manifold_robustness.registry import Registry
from manifold_robustness.attacks import engine, metrics, objectives, spaces
from manifold_robustness.attacks.engine import AttackConfig, AttackResult, Space


@dataclasses.dataclass(frozen=True)
class Attack:
    """A named attack: loop settings, a parameterisation and an objective.  Calling it is pure."""

    name: str
    config: AttackConfig
    space: Space
    objective: Callable

    def __call__(self, logits_fn, batch: dict, key: jax.Array, context: Any = None) -> AttackResult:
        leaves = jax.tree.leaves((batch, self.config.eps))
        if not any(isinstance(x, jax.core.Tracer) for x in leaves):  # validate concrete inputs only
            check_inputs(self, logits_fn, batch, context)
        return engine.run(self.config, self.space, self.objective, logits_fn, batch, key, context)

    def clean(self, batch: dict, context: Any = None) -> jax.Array:
        """What the classifier sees before the attack (the reconstruction for latent attacks)."""
        return spaces.clean_images(self.space, batch, context)

    def with_chunks(self, chunks: int) -> "Attack":
        """This attack with ``AttackConfig.chunks`` = ``chunks`` (1: every row every iteration, as
        on rows split over several devices; the outcome is the same up to rounding)."""
        return dataclasses.replace(self, config=dataclasses.replace(self.config, chunks=int(chunks)))

    def stronger(self, iterations: int, restarts: int, objective: Callable | None = None) -> "Attack":
        """This attack with ``iterations`` and ``restarts`` (and another objective if given): the
        attack-strength audit's version of it (same space, ball and optimiser)."""
        cfg = dataclasses.replace(self.config, iterations=int(iterations), restarts=int(restarts))
        return dataclasses.replace(self, name=f"{self.name}_strong", config=cfg, objective=objective or self.objective)

    def counted(self, logits_fn, batch: dict, context: Any = None) -> jax.Array:
        """bool[B]: the examples this attack's success rate counts, those the model classifies
        right before the attack (a transfer attack also asks its source model)."""
        return metrics.correct(logits_fn, self.clean(batch, context), batch["label"])


ATTACKS = Registry("attack", "attacks")
_register = ATTACKS.register


def make_optimizer(optimizer: str = "adam", lr: float = 0.005, step_size: float = 0.01) -> Callable[[], optax.GradientTransformation]:
    """"adam": the paper's Adam on the raw gradient (torch defaults β = 0.9, 0.999); "sign":
    Madry's signed gradient steps of size ``step_size``."""
    if optimizer == "adam":
        return lambda: optax.adam(lr)
    if optimizer == "sign":
        return lambda: engine.sign_gradient(step_size)
    raise ValueError(f"optimizer must be 'adam' or 'sign'; got {optimizer!r}")


def _config(eps, norm="linf", iterations=40, restarts=5, mode="eval", early_exit=True, init="paper",
            optimizer="adam", lr=0.005, step_size=0.01, reparam=None, chunks=AttackConfig.chunks) -> AttackConfig:
    """The engine's pieces from the names the factories and configs use: ``mode`` → a policy
    (``early_exit`` applies to "eval"), ``init`` → an initialisation, ``reparam="tanh"`` → the
    C&W constraint instead of the ball's projection; ``chunks`` as :class:`AttackConfig` (speed
    only: 1 evaluates every row every iteration)."""
    policies = {"eval": lambda: engine.eval_policy(early_exit), "train": engine.train_policy}
    if mode not in policies:
        raise ValueError(f"mode must be 'eval' or 'train'; got {mode!r}")
    if init not in engine.INITS:
        raise ValueError(f"init must be one of {sorted(engine.INITS)}; got {init!r}")
    if reparam not in (None, "tanh"):
        raise ValueError(f"reparam must be None or 'tanh'; got {reparam!r}")
    return AttackConfig(
        eps=eps, norm=norm, iterations=iterations, restarts=restarts, policy=policies[mode](),
        init=engine.INITS[init], optimizer=make_optimizer(optimizer, lr, step_size),
        constraint=engine.tanh_box() if reparam == "tanh" else None, chunks=chunks,
    )


@_register("linf", "regular L∞ PGD in image space (ε = 0.3; Adam lr 0.005, 40 iterations, 5 restarts)")
def linf(eps=0.3, **kw) -> Attack:
    return Attack("linf", _config(eps, "linf", **kw), spaces.image_space(), objectives.cross_entropy)


@_register("l2", "regular L2 PGD in image space (ε = 1.5)")
def l2(eps=1.5, **kw) -> Attack:
    return Attack("l2", _config(eps, "l2", **kw), spaces.image_space(), objectives.cross_entropy)


@_register("on_true_manifold", "FONTS: perturb θ by ‖ζ‖∞ ≤ η = 0.3 within the θ ranges, font and class fixed", needs="true")
def on_true_manifold(eps=0.3, ranges: transforms.TransformRanges = transforms.FONTS_RANGES["hard"],
                     space: Space | None = None, **kw) -> Attack:
    space = space or spaces.true_manifold_space(ranges)
    return Attack("on_true_manifold", _config(eps, "linf", **kw), space, objectives.cross_entropy)


def _latent_space(name: str, decode_fn, bound, space):
    if space is not None:
        return space
    if decode_fn is None:
        raise ValueError(f"{name} needs decode_fn(context, z, labels) -> images (e.g. the class VAE-GAN decoder) "
                         "or a manifold's space")
    return spaces.learned_manifold_space(decode_fn, bound)


@_register("on_learned_manifold", "perturb a latent code by ‖ζ‖∞ ≤ η = 0.3 within [−2, 2]^d through a (class-specific) decoder",
           needs="learned")
def on_learned_manifold(decode_fn: Callable | None = None, eps=0.3, bound: float = 2.0, space: Space | None = None,
                        **kw) -> Attack:
    space = _latent_space("on_learned_manifold", decode_fn, bound, space)
    return Attack("on_learned_manifold", _config(eps, "linf", **kw), space, objectives.cross_entropy)


@_register("on_data_manifold", "supplement: perturb a latent code by ‖ζ‖∞ ≤ η = 0.1 through a class-agnostic decoder",
           needs="agnostic")
def on_data_manifold(decode_fn: Callable | None = None, eps=0.1, bound: float = 2.0, space: Space | None = None,
                     **kw) -> Attack:
    space = _latent_space("on_data_manifold", decode_fn, bound, space)
    return Attack("on_data_manifold", _config(eps, "linf", **kw), space, objectives.cross_entropy)


@_register("transformation", "adversarial affine transformation from the identity, ‖t‖∞ ≤ 0.3 within the dataset's ranges")
def transformation(eps=0.3, ranges: transforms.TransformRanges = transforms.AFFINE_ATTACK_RANGES, **kw) -> Attack:
    return Attack("transformation", _config(eps, "linf", **kw), spaces.transformation_space(ranges), objectives.cross_entropy)


@_register("cw_l2", "Carlini–Wagner L2: margin with κ = 1.5, λ = 1, tanh reparameterisation, 120 Adam iterations, lr 0.005")
def cw_l2(kappa=1.5, lam=1.0, space: Space | None = None, iterations=120, restarts=1, init="zero", **kw) -> Attack:
    cfg = _config(float("inf"), "l2", iterations=iterations, restarts=restarts, init=init, reparam="tanh", **kw)
    return Attack("cw_l2", cfg, space or spaces.image_space(), objectives.carlini_wagner(kappa, lam))


@_register("random_image", "baseline: uniform noise in the L∞ ε-ball (ε = 0.3), no optimisation")
def random_image(eps=0.3, restarts=5, **kw) -> Attack:
    return Attack("random_image", _config(eps, "linf", iterations=0, restarts=restarts, init="uniform", **kw),
                  spaces.image_space(), objectives.cross_entropy)


@_register("random_true_latent", "baseline: uniform θ perturbation in the η-ball (FONTS), no optimisation", needs="true")
def random_true_latent(eps=0.3, ranges=transforms.FONTS_RANGES["hard"], restarts=5, space: Space | None = None,
                       **kw) -> Attack:
    return Attack("random_true_latent", _config(eps, "linf", iterations=0, restarts=restarts, init="uniform", **kw),
                  space or spaces.true_manifold_space(ranges), objectives.cross_entropy)


@_register("random_learned_latent", "baseline: uniform latent perturbation in the η-ball through the decoder, no optimisation",
           needs="learned")
def random_learned_latent(decode_fn: Callable | None = None, eps=0.3, bound=2.0, restarts=5, space: Space | None = None,
                          **kw) -> Attack:
    space = _latent_space("random_learned_latent", decode_fn, bound, space)
    return Attack("random_learned_latent", _config(eps, "linf", iterations=0, restarts=restarts, init="uniform", **kw),
                  space, objectives.cross_entropy)


def make(name: str, **overrides) -> Attack:
    """The attack ``name`` with the paper's defaults, any of them overridden (``eps``,
    ``iterations``, ``restarts``, ``mode``, ``optimizer``, ``lr``, ``step_size``, ``ranges``, …)."""
    factory = ATTACKS.lookup(name).factory
    known = _settings(factory)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"attack {name!r} has no setting {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(sorted(known))}")
    return factory(**overrides)


_FIXED = {n: {"iterations", "init"} for n in ("random_image", "random_true_latent", "random_learned_latent")}


def _settings(factory) -> set[str]:
    """The keyword arguments a factory takes: its own and, through ``**kw``, those of ``_config``."""
    params = inspect.signature(factory).parameters
    own = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        own |= set(inspect.signature(_config).parameters) - {"eps", "norm", "reparam"} - _FIXED.get(factory.__name__, set())
    return own


def check_inputs(attack: Attack, logits_fn, batch: dict, context=None) -> None:
    """Boundary validation of concrete inputs: a ValueError that says what was expected."""
    if not isinstance(batch, dict) or "label" not in batch:
        got = f"keys {sorted(batch)}" if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"batch must be a dict with 'label' int[B] (and the fields {attack.name} reads); got {got}")
    labels = np.asarray(batch["label"])
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"batch['label'] must be int[B]; got {labels.dtype}{list(labels.shape)}")
    b = labels.shape[0]
    eps = np.asarray(attack.config.eps, np.float64)
    if eps.ndim > 1 or (eps.ndim == 1 and eps.shape[0] not in (1, b)):
        raise ValueError(f"eps must be a scalar or have shape [{b}] (one per example); got shape {list(eps.shape)}")
    if np.isnan(eps).any() or (eps < 0).any():
        raise ValueError(f"eps must be >= 0 (inf for no ball); got {eps}")
    if "image" in batch:
        x = np.asarray(batch["image"])
        if x.ndim != 4 or x.dtype != np.float32:
            raise ValueError(f"batch['image'] must be float32[B, H, W, C] in [0, 1]; got {x.dtype}{list(x.shape)}")
        models.check_range(x, "batch['image']")
    for k, v in batch.items():
        if np.shape(v)[:1] != (b,):
            raise ValueError(f"batch[{k!r}] must have a leading axis of {b} examples; got shape {list(np.shape(v))}")
    try:
        x_clean = attack.clean(batch, context)
    except KeyError as err:
        raise ValueError(f"attack {attack.name} reads batch[{err}]; the batch has {sorted(batch)} "
                         "(see attacks.api for the keys of each attack)") from None
    except TypeError as err:
        if context is not None:
            raise
        raise ValueError(f"attack {attack.name} needs a context (e.g. {{'prototypes': …}} for FONTS, the "
                         f"decoder's variables for a learned manifold); got None ({err})") from None
    num_classes = jax.eval_shape(logits_fn, x_clean).shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}] for this classifier; got [{labels.min()}, {labels.max()}]")
