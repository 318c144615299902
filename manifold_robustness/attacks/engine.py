"""One attack engine for every attack in the paper (DESIGN principle 2).

Every attack optimises a variable ``v`` under a constraint, and the classifier sees ``x = g(v)``:

=========================  ======  ===========================  =================================
attack                     v       g(v)                         constraint
=========================  ======  ===========================  =================================
regular L∞ / L2            x̃       x̃                            ‖x̃ − x₀‖ ≤ ε, x̃ ∈ [0, 1]
on-learned-manifold        z       decoder_y(z)                 ‖z − z₀‖∞ ≤ η, z ∈ [−2, 2]^d
on-true-manifold (FONTS)   θ       render(font, class, θ)       ‖θ − θ₀‖∞ ≤ η, θ in its ranges
adversarial transformation t       affine(x₀, t)                ‖t − identity‖∞ ≤ η, t in ranges
=========================  ======  ===========================  =================================

A :class:`Space` is one row (start point, decoder, box); :func:`run` is the loop: random init →
``optax`` step on the objective's gradient → projection onto the ball ∩ box, in a
``lax.while_loop``, with restarts as a vmapped leading axis and ε per example.  The paper's
optimiser is Adam on the raw gradient (lr 0.005, torch defaults); Madry's sign steps are
:func:`sign_gradient`.  Iteration i = 0..T evaluates the classifier T + 1 times and steps T times,
like the original.

Two modes:

* ``"eval"`` — an example that is misclassified keeps its first successful ``v`` and stops
  moving; the loop ends early when every example (of every restart) is done.
* ``"train"`` — every iteration runs and each example keeps its highest-objective iterate (what
  adversarial training feeds the model).

Everything here is pure and traceable: wrap calls in ``jax.jit`` (the runner compiles one
function per attack and batch shape).  Validation of concrete inputs is in :mod:`.api`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

Batch = dict[str, jax.Array]
Objective = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # (logits, labels, delta) -> f[B], maximised


class Space(NamedTuple):
    """A parameterisation: where ``v`` starts, how it becomes an image, and its box.

    start(batch, context) -> v0: float[B, ...];  decode(v, batch, context) -> x: float[B, H, W, C];
    box(batch, context) -> (low, high), each broadcastable to v0.
    """

    name: str
    start: Callable[[Batch, Any], jax.Array]
    decode: Callable[[jax.Array, Batch, Any], jax.Array]
    box: Callable[[Batch, Any], tuple[jax.Array, jax.Array]]


class AttackResult(NamedTuple):
    """Leading axis R = restarts, then B = examples.

    x: float[R, B, H, W, C] adversarial images; v: float[R, B, ...] adversarial variables;
    success: bool[R, B] misclassified at the returned iterate; first_success: int32[R, B] first
    iteration at which the example was misclassified (−1: never); loss: float[R, B] objective at
    the returned iterate; l1, l2, linf: float[R, B] norms of the image-space perturbation
    x − g(v₀); nonfinite: int32[R, B] iterations whose gradient was non-finite (masked to zero).
    """

    x: jax.Array
    v: jax.Array
    success: jax.Array
    first_success: jax.Array
    loss: jax.Array
    l1: jax.Array
    l2: jax.Array
    linf: jax.Array
    nonfinite: jax.Array


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """Loop settings (paper defaults: digest §5.1, §9).  ``norm`` of the ball ("linf" | "l2"),
    ``eps`` its radius (scalar or per example; ``inf`` = no ball), ``reparam="tanh"`` optimises an
    unconstrained w with v = low + (high − low)(tanh w + 1)/2 (Carlini–Wagner) instead of
    projecting."""

    eps: Any = 0.3
    norm: str = "linf"
    iterations: int = 40
    restarts: int = 5
    mode: str = "eval"
    early_exit: bool = True
    init: str = "paper"  # "paper" | "uniform" | "zero"
    optimizer: Callable[[], optax.GradientTransformation] = lambda: optax.adam(0.005)
    reparam: str | None = None
    projections: int = 5  # rounds of alternating ball/box projection (exact after one for L∞)

    def __post_init__(self):
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2'; got {self.norm!r}")
        if self.mode not in ("eval", "train"):
            raise ValueError(f"mode must be 'eval' or 'train'; got {self.mode!r}")
        if self.init not in ("paper", "uniform", "zero"):
            raise ValueError(f"init must be 'paper', 'uniform' or 'zero'; got {self.init!r}")
        if self.reparam not in (None, "tanh"):
            raise ValueError(f"reparam must be None or 'tanh'; got {self.reparam!r}")
        if self.iterations < 0 or self.restarts < 1:
            raise ValueError(f"need iterations >= 0 and restarts >= 1; got {self.iterations}, {self.restarts}")


def sign_gradient(step_size: float) -> optax.GradientTransformation:
    """Madry et al.'s PGD step as an optax transformation: v ← v − α·sign(∇) (of the minimised loss)."""
    return optax.chain(optax.scale_by_sign(), optax.scale(-step_size))


# ---------------------------------------------------------------------------------------------
# pieces


def _per_example(x: jax.Array, b: int) -> jax.Array:
    """Broadcast a scalar or [B] array to [B] (shape errors are caught at the boundary)."""
    return jnp.broadcast_to(jnp.asarray(x, jnp.float32), (b,))


def _expand(e: jax.Array, like: jax.Array) -> jax.Array:
    return e.reshape(e.shape + (1,) * (like.ndim - 1))


def _norm(d: jax.Array, ord_: str) -> jax.Array:
    flat = d.reshape(d.shape[0], -1)
    if ord_ == "linf":
        return jnp.max(jnp.abs(flat), axis=1)
    if ord_ == "l2":
        return jnp.sqrt(jnp.sum(flat * flat, axis=1))
    return jnp.sum(jnp.abs(flat), axis=1)


def project(v, v0, eps, low, high, norm: str, rounds: int = 5):
    """Onto {‖v − v0‖ ≤ eps} ∩ [low, high]: clip to the ball, then to the box.  For L∞ one round
    is exact (intersection of intervals); for L2 the original alternated up to 5 rounds."""
    e = _expand(eps, v)
    if norm == "linf":
        return jnp.clip(jnp.clip(v, v0 - e, v0 + e), low, high)

    def one(_, v):
        d = v - v0
        n = _expand(_norm(d, "l2"), v)
        d = d * jnp.minimum(1.0, e / jnp.maximum(n, 1e-12))
        return jnp.clip(v0 + d, low, high)

    return jax.lax.fori_loop(0, rounds, one, v)


def initial_perturbation(key, v0, eps, norm: str, init: str) -> jax.Array:
    """δ₀ for one restart.  "paper": Gaussian direction normalised to unit norm, radius u·ε with
    u ~ U(0, 1) (uniform radius, not uniform volume); "uniform": uniform in the L∞ box [−ε, ε];
    "zero": no perturbation."""
    e = _expand(jnp.where(jnp.isfinite(eps), eps, 0.0), v0)
    if init == "zero":
        return jnp.zeros_like(v0)
    if init == "uniform":
        return jax.random.uniform(key, v0.shape, v0.dtype, -1.0, 1.0) * e
    k_dir, k_rad = jax.random.split(key)
    d = jax.random.normal(k_dir, v0.shape, v0.dtype)
    d = d / _expand(jnp.maximum(_norm(d, norm), 1e-12), v0)
    u = jax.random.uniform(k_rad, (v0.shape[0],), v0.dtype)
    return d * _expand(u, v0) * e


# ---------------------------------------------------------------------------------------------
# the loop


def run(config: AttackConfig, space: Space, objective: Objective, logits_fn, batch: Batch, key, context=None) -> AttackResult:
    """Attack ``batch`` (needs ``label``: int32[B] plus what ``space`` reads) → :class:`AttackResult`."""
    labels = batch["label"]
    b = labels.shape[0]
    v0 = space.start(batch, context)
    low, high = space.box(batch, context)
    low, high = jnp.broadcast_to(low, v0.shape), jnp.broadcast_to(high, v0.shape)
    eps = _per_example(config.eps, b)
    x_ref = space.decode(v0, batch, context)
    optimizer = config.optimizer()
    tanh = config.reparam == "tanh"

    def to_v(w):
        return low + (high - low) * (jnp.tanh(w) + 1.0) * 0.5 if tanh else w

    def from_v(v):
        if not tanh:
            return v
        s = jnp.clip(2.0 * (v - low) / jnp.maximum(high - low, 1e-12) - 1.0, -1 + 1e-6, 1 - 1e-6)
        return jnp.arctanh(s)

    def evaluate(w):
        v = to_v(w)
        logits = logits_fn(space.decode(v, batch, context))
        j = objective(logits, labels, v - v0)
        return jnp.sum(j), (j, jnp.argmax(logits, axis=-1) != labels)

    grad_fn = jax.value_and_grad(evaluate, has_aux=True)

    def restart(key):
        v = v0 + initial_perturbation(key, v0, eps, config.norm, config.init)
        v = project(v, v0, eps, low, high, config.norm, config.projections) if not tanh else jnp.clip(v, low, high)
        w = from_v(v)
        carry = {
            "i": jnp.int32(0),
            "w": w,
            "opt": optimizer.init(w),
            "best_w": w,
            "best_j": jnp.full((b,), -jnp.inf, jnp.float32),
            "done": jnp.zeros((b,), bool),
            "first": jnp.full((b,), -1, jnp.int32),
            "nonfinite": jnp.zeros((b,), jnp.int32),
        }

        def record(c, w, j, wrong):
            first = jnp.where(wrong & (c["first"] < 0), c["i"], c["first"])
            if config.mode == "eval":
                return {**c, "first": first, "done": c["done"] | wrong}
            better = j > c["best_j"]
            best_w = jnp.where(_expand(better, w), w, c["best_w"])
            return {**c, "first": first, "done": c["done"] | wrong, "best_w": best_w, "best_j": jnp.maximum(j, c["best_j"])}

        def body(c):
            (_, (j, wrong)), g = grad_fn(c["w"])
            c = record(c, c["w"], j, wrong)
            finite = jnp.all(jnp.isfinite(g.reshape(b, -1)), axis=1)
            g = jnp.where(_expand(finite, g), g, 0.0)
            updates, opt = optimizer.update(-g, c["opt"], c["w"])  # optax minimises: ascend the objective
            w = c["w"] + updates
            if not tanh:
                w = project(w, v0, eps, low, high, config.norm, config.projections)
            if config.mode == "eval":  # successful examples keep their first adversarial iterate
                w = jnp.where(_expand(c["done"], w), c["w"], w)
            return {**c, "i": c["i"] + 1, "w": w, "opt": opt, "nonfinite": c["nonfinite"] + (~finite)}

        def cond(c):
            more = c["i"] < config.iterations
            if config.mode == "eval" and config.early_exit:
                more = more & ~jnp.all(c["done"])
            return more

        c = jax.lax.while_loop(cond, body, carry)
        _, (j, wrong) = evaluate(c["w"])  # the (T+1)-th evaluation
        c = record(c, c["w"], j, wrong)
        w_out = c["w"] if config.mode == "eval" else c["best_w"]
        return w_out, c["first"], c["nonfinite"]

    # fold_in, not split: the first r restarts of a run with more restarts are exactly a run with r
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(config.restarts))
    w_out, first, nonfinite = jax.vmap(restart)(keys)
    v_out = to_v(w_out)
    x = jax.vmap(lambda v: space.decode(v, batch, context))(v_out)
    logits = jax.vmap(logits_fn)(x)
    success = jnp.argmax(logits, axis=-1) != labels[None]
    loss = jax.vmap(lambda lg, v: objective(lg, labels, v - v0))(logits, v_out)
    d = x - x_ref[None]
    norms = {k: jax.vmap(lambda dd: _norm(dd, k))(d) for k in ("l1", "l2", "linf")}
    return AttackResult(x, v_out, success, first, loss, norms["l1"], norms["l2"], norms["linf"], nonfinite)
