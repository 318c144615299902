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

A :class:`Space` is one row (start point, decoder, box); :func:`run` is the loop.  What varies
between attacks is passed in as small pieces, not selected by flags:

* an **initialisation** ``init(key, v0, eps, norm) -> δ₀`` (:func:`paper_init`, :func:`uniform_init`,
  :func:`zero_init`);
* an ``optax`` **optimiser** on the objective's gradient (the paper's Adam, lr 0.005, torch
  defaults; Madry's sign steps are :func:`sign_gradient`);
* a **constraint** (:func:`ball`: projection onto the ε-ball ∩ box after every step; :func:`tanh_box`:
  the Carlini–Wagner change of variables, no projection);
* a **policy**: what the loop keeps and when it may stop.  :func:`eval_policy` — an example that
  is misclassified keeps its first successful ``v`` and stops moving, and the loop ends when every
  example is done (``early_exit``); :func:`train_policy` — every iteration runs and each example
  keeps its highest-objective iterate (what adversarial training feeds the model).

Restarts are folded into the example axis: each example is repeated R times, so one ``while_loop`` with
one done-mask serves every (restart, example) row, the classifier sees R·B rows per call, and the
loop stops as soon as the slowest *row* is done (a vmap over restarts would run every restart
until the slowest restart is).  Rows never interact (the classifier is in eval mode, the optimiser
is elementwise), and restart r starts from ``fold_in(key, r)``, so the first r restarts of a run
with more restarts are a run with r.  ε may be a scalar or one per example.  Iteration
i = 0..T evaluates the classifier T + 1 times and steps T times, like the original.

A row that has stopped moving (eval mode: it succeeded) needs no more evaluations, so each
iteration gathers the moving rows first, cuts the rows into ``AttackConfig.chunks`` chunks (of at
least :data:`MIN_CHUNK_ROWS` rows) and computes only the chunks that hold a moving row
(``lax.cond`` inside ``lax.map``); the outputs are scattered back to row order.  The result is the
same attack (each moving row's objective and gradient are its own: rows never interact), only
cheaper: on a CNN trained to 25 % test error, the paper's attack with early exit ran 2.2× the
every-row loop, and with 8 chunks 4-5× (``benchmarks/attack_throughput.py``).  ``chunks=1``
evaluates every row every iteration: use it when the rows are split over several devices (the
gather would move rows between devices and every device would compute every chunk; the runner
does so on a mesh, see ``runner.setting.attack_model``).

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
Init = Callable[[jax.Array, jax.Array, jax.Array, str], jax.Array]  # (key, v0, eps[B], norm) -> δ₀


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
    x − g(v₀); nonfinite: int32[R, B] iterations whose gradient was non-finite (masked to zero),
    counted while the row moves.
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


# ---------------------------------------------------------------------------------------------
# pieces: norms, projection, initialisations


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


def _finite_eps(eps, v0):
    return _expand(jnp.where(jnp.isfinite(eps), eps, 0.0), v0)


def _flat(draw, key, like: jax.Array, *args) -> jax.Array:
    """``draw(key, like.shape, ...)`` drawn as a flat vector and reshaped: the same values (the
    counters are the elements' row-major positions either way), but the flat draw compiles ~3×
    faster on CPU than one of rank ≥ 3 (0.2 s against 0.6 s for an image batch, jax 0.10) — and
    every compiled attack carries one."""
    return draw(key, (like.size,), like.dtype, *args).reshape(like.shape)


def paper_init(key, v0, eps, norm: str) -> jax.Array:
    """The original's start: a Gaussian direction normalised to unit ``norm``, radius u·ε with
    u ~ U(0, 1) (uniform radius, not uniform volume).  Both come from one uniform draw (the
    direction through erf⁻¹, as ``jax.random.normal`` makes normals): one random program instead
    of three in every compiled attack."""
    b, size = v0.shape[0], v0.size
    u = jax.random.uniform(key, (size + b,), v0.dtype, jnp.nextafter(jnp.asarray(-1.0, v0.dtype), 0.0), 1.0)
    d = (jnp.sqrt(jnp.asarray(2.0, v0.dtype)) * jax.lax.erf_inv(u[:size])).reshape(v0.shape)
    d = d / _expand(jnp.maximum(_norm(d, norm), 1e-12), v0)
    radius = (u[size:] + 1.0) * 0.5
    return d * _expand(radius, v0) * _finite_eps(eps, v0)


def uniform_init(key, v0, eps, norm: str) -> jax.Array:
    """Uniform in the L∞ box [−ε, ε] (the random baselines)."""
    del norm
    return _flat(jax.random.uniform, key, v0, -1.0, 1.0) * _finite_eps(eps, v0)


def zero_init(key, v0, eps, norm: str) -> jax.Array:
    """No perturbation (C&W starts at the input)."""
    del key, eps, norm
    return jnp.zeros_like(v0)


INITS: dict[str, Init] = {"paper": paper_init, "uniform": uniform_init, "zero": zero_init}


def initial_perturbation(key, v0, eps, norm: str, init: str | Init) -> jax.Array:
    """δ₀ for one restart (``init`` an initialisation or its name in :data:`INITS`)."""
    return (INITS[init] if isinstance(init, str) else init)(key, v0, eps, norm)


def sign_gradient(step_size: float) -> optax.GradientTransformation:
    """Madry et al.'s PGD step as an optax transformation: v ← v − α·sign(∇) (of the minimised loss)."""
    return optax.chain(optax.scale_by_sign(), optax.scale(-step_size))


# ---------------------------------------------------------------------------------------------
# constraints: how the optimised variable w relates to v, and what keeps it feasible


class Constraint(NamedTuple):
    """``start(v, low, high) -> w`` from a feasible start; ``to_v(w, low, high) -> v``;
    ``project(w, v0, eps, low, high) -> w`` after each step."""

    name: str
    start: Callable
    to_v: Callable
    project: Callable


def ball(norm: str, rounds: int = 5) -> Constraint:
    """Optimise v itself, projected onto the ``norm`` ball of radius ε around v₀ ∩ the box."""
    return Constraint(
        name=f"{norm}_ball",
        start=lambda v, low, high: v,
        to_v=lambda w, low, high: w,
        project=lambda w, v0, eps, low, high: project(w, v0, eps, low, high, norm, rounds),
    )


def tanh_box() -> Constraint:
    """Carlini–Wagner: optimise an unconstrained w with v = low + (high − low)(tanh w + 1)/2, so v
    stays in the box without a projection (no ε-ball: the objective penalises the norm)."""

    def to_v(w, low, high):
        return low + (high - low) * (jnp.tanh(w) + 1.0) * 0.5

    def start(v, low, high):
        s = jnp.clip(2.0 * (v - low) / jnp.maximum(high - low, 1e-12) - 1.0, -1 + 1e-6, 1 - 1e-6)
        return jnp.arctanh(s)

    return Constraint("tanh_box", start, to_v, lambda w, v0, eps, low, high: w)


# ---------------------------------------------------------------------------------------------
# policies: eval vs train semantics


class Policy(NamedTuple):
    """What the loop keeps and when it may stop.

    ``init(w, rows) -> state``: the policy's own carry; ``record(state, w, j, wrong) -> state``
    after each evaluation (``j`` the objective, ``wrong`` misclassified, per row); ``moving(done)``:
    the rows that take the next step; ``finished(done)``: the loop may stop before its last
    iteration; ``output(state, w)``: the iterate each row returns.  A row that is not moving
    needs no evaluation (``record`` must ignore it: its objective, decision and gradient read as
    zero); ``freezes`` says whether ``moving`` can leave rows out, and so whether the loop gathers
    and skips them.
    """

    name: str
    init: Callable
    record: Callable
    moving: Callable
    finished: Callable
    output: Callable
    freezes: bool = False  # whether ``moving`` can leave rows out (the loop then skips them)


def eval_policy(early_exit: bool = True) -> Policy:
    """Evaluation: a row keeps its first misclassified iterate and stops moving; with
    ``early_exit`` the loop ends once every row is done (a pure speed-up: frozen rows would not
    change)."""
    return Policy(
        name="eval",
        init=lambda w, rows: (),
        record=lambda state, w, j, wrong: state,
        moving=lambda done: ~done,
        finished=(lambda done: jnp.all(done)) if early_exit else (lambda done: jnp.bool_(False)),
        output=lambda state, w: w,
        freezes=True,
    )


def train_policy() -> Policy:
    """Training: every iteration runs and each row keeps its highest-objective iterate."""

    def record(state, w, j, wrong):
        better = j > state["best_j"]
        return {"best_w": jnp.where(_expand(better, w), w, state["best_w"]), "best_j": jnp.maximum(j, state["best_j"])}

    return Policy(
        name="train",
        init=lambda w, rows: {"best_w": w, "best_j": jnp.full((rows,), -jnp.inf, jnp.float32)},
        record=record,
        moving=lambda done: jnp.ones_like(done),
        finished=lambda done: jnp.bool_(False),
        output=lambda state, w: state["best_w"],
    )


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """Loop settings (paper defaults: digest §5.1, §9).  ``norm`` of the ball and of the paper
    initialisation ("linf" | "l2"); ``eps`` its radius (scalar or per example; ``inf`` = no ball);
    ``constraint`` default: :func:`ball` of ``norm`` with ``projections`` rounds; ``chunks``: how
    finely the rows are cut so that chunks of frozen rows can be skipped (speed only; see the
    module docstring)."""

    eps: Any = 0.3
    norm: str = "linf"
    iterations: int = 40
    restarts: int = 5
    policy: Policy = eval_policy()
    init: Init = paper_init
    optimizer: Callable[[], optax.GradientTransformation] = lambda: optax.adam(0.005)
    constraint: Constraint | None = None
    projections: int = 5  # rounds of alternating ball/box projection (exact after one for L∞)
    chunks: int = 8  # rows evaluated in up to this many chunks, frozen rows last, skipped (see run)

    def __post_init__(self):
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2'; got {self.norm!r}")
        if not isinstance(self.policy, Policy):
            raise ValueError(f"policy must be an engine.Policy (eval_policy() or train_policy()); got {self.policy!r}")
        if not callable(self.init):
            raise ValueError(f"init must be a function (key, v0, eps, norm) -> δ0; got {self.init!r}")
        if self.constraint is not None and not isinstance(self.constraint, Constraint):
            raise ValueError(f"constraint must be an engine.Constraint (ball(...) or tanh_box()); got {self.constraint!r}")
        if self.iterations < 0 or self.restarts < 1:
            raise ValueError(f"need iterations >= 0 and restarts >= 1; got {self.iterations}, {self.restarts}")
        if not isinstance(self.chunks, int) or self.chunks < 1:
            raise ValueError(f"chunks must be a whole number >= 1 (1: every row every iteration); got {self.chunks!r}")

    @property
    def mode(self) -> str:
        """The policy's name ("eval" or "train")."""
        return self.policy.name


# ---------------------------------------------------------------------------------------------
# the loop


MIN_CHUNK_ROWS = 32  # below this a chunk's call overhead outweighs what skipping it saves


def _rows(a: jax.Array, r: int) -> jax.Array:
    """[B, ...] → [B·R, ...]: example-major rows (row i·R + k is restart k of example i), so a
    batch split over devices by example stays split the same way (each device's examples with all
    their restarts)."""
    return jnp.repeat(a, r, axis=0)


def run(config: AttackConfig, space: Space, objective: Objective, logits_fn, batch: Batch, key, context=None) -> AttackResult:
    """Attack ``batch`` (needs ``label``: int32[B] plus what ``space`` reads) → :class:`AttackResult`."""
    r, policy = config.restarts, config.policy
    constraint = config.constraint or ball(config.norm, config.projections)
    b = batch["label"].shape[0]
    v0 = space.start(batch, context)
    low, high = (jnp.broadcast_to(a, v0.shape) for a in space.box(batch, context))
    eps = jnp.broadcast_to(jnp.asarray(config.eps, jnp.float32), (b,))
    x_ref = space.decode(v0, batch, context)

    # every (restart, example) pair is a row; restart r draws its start from fold_in(key, r)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(r))
    delta = jax.vmap(lambda k: config.init(k, v0, eps, config.norm))(keys)  # [R, B, ...]
    rows_batch = jax.tree.map(lambda a: _rows(a, r), batch)
    v0, low, high, eps = (_rows(a, r) for a in (v0, low, high, eps))
    labels, m = rows_batch["label"], r * b
    v = constraint.project(v0 + jnp.swapaxes(delta, 0, 1).reshape(v0.shape), v0, eps, low, high)
    v = jnp.clip(v, low, high)
    optimizer = config.optimizer()

    def evaluate(w, rows_batch, v0, low, high):
        v = constraint.to_v(w, low, high)
        logits = logits_fn(space.decode(v, rows_batch, context))
        j = objective(logits, rows_batch["label"], v - v0)
        return jnp.sum(j), (j, jnp.argmax(logits, axis=-1) != rows_batch["label"])

    def gradient(w, *rows):  # -> (j, wrong, g), each per row
        (_, (j, wrong)), g = jax.value_and_grad(evaluate, has_aux=True)(w, *rows)
        return j, wrong, g

    per_row = (rows_batch, v0, low, high)
    chunks = max(1, min(config.chunks, m // MIN_CHUNK_ROWS)) if policy.freezes else 1

    def moving_gradient(w, moving):
        """The gradient step's inputs for the moving rows; the others read zero.  With chunks > 1
        the moving rows are gathered first and the rows cut into chunks, and a chunk with no
        moving row is not computed (frozen rows cost nothing)."""
        if chunks == 1:
            j, wrong, g = gradient(w, *per_row)
        else:
            size = -(-m // chunks)
            order = jnp.argsort(~moving, stable=True)  # moving rows first, each group in row order
            order = jnp.concatenate([order, jnp.zeros(size * chunks - m, order.dtype)])
            cut = lambda a: a[order].reshape((chunks, size) + a.shape[1:])  # noqa: E731
            parts = jax.tree.map(cut, (w, per_row))
            active = jnp.arange(chunks) * size < jnp.sum(moving)
            run_part = lambda p: gradient(p[0], *p[1])  # noqa: E731
            zeros = jax.eval_shape(run_part, jax.tree.map(lambda a: a[0], parts))

            def chunk(a):
                on, part = a
                skip = lambda p: jax.tree.map(lambda o: jnp.zeros(o.shape, o.dtype), zeros)  # noqa: E731
                return jax.lax.cond(on, run_part, skip, part)

            out = jax.lax.map(chunk, (active, parts))
            j, wrong, g = jax.tree.map(lambda o: jnp.zeros((m,) + o.shape[2:], o.dtype).at[order[:m]].set(
                o.reshape((chunks * size,) + o.shape[2:])[:m], unique_indices=True), out)
        return jnp.where(moving, j, 0.0), wrong & moving, jnp.where(_expand(moving, g), g, 0.0)

    def record(c, j, wrong):
        first = jnp.where(wrong & (c["first"] < 0), c["i"], c["first"])
        return {**c, "first": first, "done": c["done"] | wrong, "policy": policy.record(c["policy"], c["w"], j, wrong)}

    def body(c):
        j, wrong, g = moving_gradient(c["w"], policy.moving(c["done"]))
        c = record(c, j, wrong)
        finite = jnp.all(jnp.isfinite(g.reshape(m, -1)), axis=1)
        g = jnp.where(_expand(finite, g), g, 0.0)
        updates, opt = optimizer.update(-g, c["opt"], c["w"])  # optax minimises: ascend the objective
        w = constraint.project(c["w"] + updates, v0, eps, low, high)
        w = jnp.where(_expand(policy.moving(c["done"]), w), w, c["w"])  # a row just done keeps this iterate
        return {**c, "i": c["i"] + 1, "w": w, "opt": opt, "nonfinite": c["nonfinite"] + (~finite)}

    def cond(c):
        return (c["i"] < config.iterations) & ~policy.finished(c["done"])

    w = constraint.start(v, low, high)
    carry = {
        "i": jnp.int32(0), "w": w, "opt": optimizer.init(w), "policy": policy.init(w, m),
        "done": jnp.zeros((m,), bool), "first": jnp.full((m,), -1, jnp.int32), "nonfinite": jnp.zeros((m,), jnp.int32),
    }
    # no loop at all without iterations (the random baselines): their programs carry no gradient
    c = jax.lax.while_loop(cond, body, carry) if config.iterations > 0 else carry
    _, (j, wrong) = evaluate(c["w"], *per_row)  # the (T+1)-th evaluation
    c = record(c, j, wrong)
    v_out = constraint.to_v(policy.output(c["policy"], c["w"]), low, high)
    x = space.decode(v_out, rows_batch, context)
    logits = logits_fn(x)
    d = x - _rows(x_ref, r)

    def split(a):  # [B·R, ...] → [R, B, ...]
        return jnp.swapaxes(a.reshape((b, r) + a.shape[1:]), 0, 1)

    return AttackResult(
        x=split(x), v=split(v_out), success=split(jnp.argmax(logits, axis=-1) != labels), first_success=split(c["first"]),
        loss=split(objective(logits, labels, v_out - v0)), l1=split(_norm(d, "l1")), l2=split(_norm(d, "l2")),
        linf=split(_norm(d, "linf")), nonfinite=split(c["nonfinite"]),
    )
