"""The one training loop: pure epoch and evaluation functions, vmapped over seeds.

The paper's recipe (reference digest paper §6.2, code §6.1) is the default: Adam with β = (0.5, 0.9),
learning rate 0.01 decayed ×0.95 per epoch (continuously per batch, as the original: the rate at
step s is 0.01·0.95^(1 + s/steps_per_epoch)), weight decay 1e-4, batch 100, 20 epochs.  The
original used PyTorch Adam's ``weight_decay``, i.e. an L2 term added to the gradient *before* the
Adam moments (coupled, not AdamW); :func:`make_optimizer` reproduces that with
``optax.add_decayed_weights`` ahead of ``optax.scale_by_adam``, applied to all parameters.

An epoch is one loop over shuffled batches inside ``jit``.  The last partial batch is filled up
by wrapping around the epoch's permutation and the filler rows get zero loss weight (they do take
part in that batch's batch-norm statistics, as duplicates of real training images).  Several
seeds train side by side: the state has a leading seed axis and the epoch is ``vmap``-ed over it,
each seed with its own initialisation and shuffling (a single seed is traced without the
vmap, :func:`over_seeds`).

The number of training examples is an argument of the compiled epoch, not part of its shape: the
dataset's arrays may hold more rows than are trained on (``capacity``; the trainer pads to a power
of two, the runner to its grid's largest N), the step count and the learning-rate schedule are
computed from the traced count, and the shuffle of ``n`` examples does not depend on the capacity.
So one compiled program serves every N that fits, and the result is the same whatever the
capacity.

With a data mesh (:mod:`manifold_robustness.parallel`) each gathered batch, and what the method
builds from it, is constrained to be split along its example axis over the devices; the seed
axis added by ``vmap`` stays whole on every device, and the dataset, parameters and optimiser
state are replicated.  The program stays global-view, so the loss and the batch-norm statistics
are still over the whole batch (the compiler adds the cross-device sums).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from manifold_robustness import parallel
from manifold_robustness.training.methods import Builder


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimiser and schedule; defaults are the paper's (digest §6.2)."""

    epochs: int = 20
    batch_size: int = 100
    learning_rate: float = 0.01
    lr_decay: float = 0.95  # per epoch
    weight_decay: float = 1e-4  # coupled L2 (PyTorch Adam), not AdamW
    b1: float = 0.5
    b2: float = 0.9
    eval_batch_size: int = 500

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.batch_size % 2:
            raise ValueError(f"batch_size must be even (methods split batches into halves); got {self.batch_size}")
        if not 0.0 < self.lr_decay <= 1.0 or self.learning_rate <= 0.0:
            raise ValueError(f"need learning_rate > 0 and 0 < lr_decay <= 1; got {self.learning_rate}, {self.lr_decay}")


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    return math.ceil(num_examples / batch_size)


def paper_schedule(config: TrainConfig, num_steps_per_epoch) -> optax.Schedule:
    """The learning rate at step ``count``: ``lr · decay^(1 + count / steps_per_epoch)``.

    ``num_steps_per_epoch`` may be traced (the compiled epoch computes it from the number of
    examples), which ``optax.exponential_decay`` does not allow; this is its non-staircase form."""
    init = config.learning_rate * config.lr_decay

    def schedule(count):
        return init * jnp.power(config.lr_decay, count / num_steps_per_epoch)

    return schedule


def make_optimizer(config: TrainConfig, num_steps_per_epoch) -> optax.GradientTransformation:
    """The paper's optimiser (see the module docstring).  ``num_steps_per_epoch`` may be traced;
    the state's structure does not depend on it."""
    schedule = paper_schedule(config, num_steps_per_epoch)
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay),
        optax.scale_by_adam(b1=config.b1, b2=config.b2, eps=1e-8),
        optax.scale_by_learning_rate(schedule),
    )


def _as_float(images: jax.Array) -> jax.Array:
    return images.astype(jnp.float32) / 255.0 if images.dtype == jnp.uint8 else images


# The smallest capacity: every N up to it (tiny presets, tests, the paper's N = 250 … 1000) shares
# one compiled epoch per model and method; padding rows cost memory only (they are never read).
MIN_CAPACITY = 1024


def bucket(num_examples: int, batch_size: int = 1) -> int:
    """The capacity the trainer gives ``num_examples`` rows: the next power of two, at least
    :data:`MIN_CAPACITY` and one batch, so runs whose sizes share a bucket share a compiled epoch."""
    return max(1 << max(0, int(num_examples) - 1).bit_length(), MIN_CAPACITY, int(batch_size))


def shuffle(key: jax.Array, num_examples, capacity: int) -> jax.Array:
    """int32[capacity]: a uniformly random order of rows ``0..num_examples-1``, then the others.

    ``num_examples`` may be traced.  Each row's sort key is drawn from ``fold_in(key, row)``, so the
    order of the first ``num_examples`` rows depends on the key and the count, not on ``capacity``
    (64 random bits per row make ties, broken by row, practically absent)."""
    rows = jnp.arange(capacity, dtype=jnp.int32)
    bits = jax.vmap(lambda r: jax.random.bits(jax.random.fold_in(key, r), (2,), jnp.uint32))(rows)
    unused = (rows >= num_examples).astype(jnp.uint32)
    return jax.lax.sort((unused, bits[:, 0], bits[:, 1], rows), num_keys=3)[-1]


def batch_rows(order: jax.Array, step, num_examples, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """The rows of batch ``step`` of an epoch walking ``order``: int32[B], wrapping around at
    ``num_examples`` to fill the last batch, and the mask bool[B] of the rows that count."""
    pos = step * batch_size + jnp.arange(batch_size)
    return order[pos % num_examples], pos < num_examples


def _optimizer_for(optimizer, num_steps_per_epoch) -> optax.GradientTransformation:
    """An optax transformation as it is, or a function of the (traced) steps per epoch called."""
    return optimizer if isinstance(optimizer, optax.GradientTransformation) else optimizer(num_steps_per_epoch)


def make_epoch_fn(classifier, optimizer, builder: Builder, batch_size: int, mesh=None) -> Callable:
    """``epoch(state, data, key, arrays, num_examples) -> (state, metrics)`` for one seed; pure, to
    be jit/vmap-ed.

    state: {"variables": {"params", "batch_stats"}, "opt_state"}; data: dict of arrays with a
    leading example axis (``image`` uint8 or float32 NHWC, ``label`` int32, extras), of which the
    first ``num_examples`` rows (int, may be traced; default all) are trained on; metrics: mean
    loss and error over the epoch's batches (as the optimiser saw them).  ``optimizer``: an optax
    transformation, or a function of the steps per epoch that returns one (a schedule that decays
    per epoch, as :func:`make_optimizer`; the state's structure must not depend on the argument).
    ``mesh``: a data mesh (``batch_size`` must be a multiple of its devices) over which each batch
    [B, ...] is split.
    """
    if mesh is not None:
        parallel.check_divisible(batch_size, mesh, "training batch size", remedy=parallel.FEWER_DEVICES)

    def epoch(state, data, key, arrays=None, num_examples=None):
        capacity = data["label"].shape[0]
        n = capacity if num_examples is None else num_examples
        steps = (n + batch_size - 1) // batch_size
        opt = _optimizer_for(optimizer, steps)
        perm_key, step_key = jax.random.split(key)
        order = shuffle(perm_key, n, capacity)

        def step(s, carry):
            variables, opt_state, loss_sum, err_sum = carry
            rows, mask = parallel.constrain_rows(batch_rows(order, s, n, batch_size), mesh)
            batch = {k: v[rows] for k, v in data.items()}
            batch["image"] = _as_float(batch["image"])
            batch["mask"] = mask
            batch = parallel.constrain_rows(batch, mesh)
            built = builder(variables, batch, jax.random.fold_in(step_key, s), arrays)
            inputs, labels, weights = parallel.constrain_rows(built, mesh)

            def loss_fn(params):
                logits, stats = classifier.apply(
                    {"params": params, "batch_stats": variables["batch_stats"]}, inputs, train=True
                )
                ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
                wrong = (jnp.argmax(logits, -1) != labels).astype(jnp.float32)
                return jnp.sum(weights * ce), (stats, jnp.sum(weights * wrong))

            (loss, (stats, err)), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
            updates, opt_state = opt.update(grads, opt_state, variables["params"])
            params = optax.apply_updates(variables["params"], updates)
            return {"params": params, "batch_stats": stats}, opt_state, loss_sum + loss, err_sum + err

        zero = jnp.zeros((), jnp.float32)
        carry = (state["variables"], state["opt_state"], zero, zero)
        variables, opt_state, loss_sum, err_sum = jax.lax.fori_loop(0, steps, step, carry)
        metrics = {"loss": loss_sum / steps, "error": err_sum / steps}
        return {"variables": variables, "opt_state": opt_state}, metrics

    return epoch


def make_eval_fn(classifier, batch_size: int, mesh=None) -> Callable:
    """``evaluate(variables, images, labels) -> {"error", "loss"}`` in eval mode; pure, batched with a
    padded, masked last batch (one compiled shape whatever the test-set size).  ``mesh``: a data
    mesh over which each batch is split (``batch_size`` a multiple of its devices)."""
    if mesh is not None:
        parallel.check_divisible(batch_size, mesh, "evaluation batch size", remedy=parallel.FEWER_DEVICES)

    def evaluate(variables, images, labels):
        n = labels.shape[0]
        steps = steps_per_epoch(n, batch_size)
        rows = jnp.resize(jnp.arange(n), (steps * batch_size,)).reshape(steps, batch_size)
        mask = (jnp.arange(steps * batch_size) < n).reshape(steps, batch_size).astype(jnp.float32)

        def body(totals, xs):
            r, m = parallel.constrain_rows(xs, mesh)
            x, y = parallel.constrain_rows((_as_float(images[r]), labels[r]), mesh)
            logits, _ = classifier.apply(variables, x, train=False)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            wrong = (jnp.argmax(logits, -1) != y).astype(jnp.float32)
            return (totals[0] + jnp.sum(m * wrong), totals[1] + jnp.sum(m * ce)), None

        (wrong, loss), _ = jax.lax.scan(body, (jnp.float32(0), jnp.float32(0)), (rows, mask))
        return {"error": wrong / n, "loss": loss / n}

    return evaluate


def init_state(variables, optimizer: optax.GradientTransformation) -> dict:
    return {"variables": variables, "opt_state": optimizer.init(variables["params"])}


class RetraceError(RuntimeError):
    """A compiled function was traced again: something changed shape or dtype between calls."""


def over_seeds(fn: Callable, in_axes) -> Callable:
    """``jax.vmap(fn, in_axes)`` over the leading seed axis (``in_axes`` as vmap's, a tuple with 0
    on the per-seed arguments), except that a single seed calls ``fn`` on the seed's slice and puts
    the axis back.  Same result; the point is the trace: vmap re-traces every loop body of the
    epoch (the batch loop, the inner attacks' loops) through its batching rules, which took ~60 %
    of tracing a tiny CNN's regular-AT epoch (0.85 of 1.4 s with lowering, 2 CPU cores), and most
    runs train one seed (the ``quick`` and ``tiny`` presets, notebooks)."""
    batched = jax.vmap(fn, in_axes=in_axes)

    def call(*args):
        sizes = {jax.tree.leaves(a)[0].shape[0] for a, ax in zip(args, in_axes) if ax == 0 and jax.tree.leaves(a)}
        if sizes != {1}:
            return batched(*args)
        one = [jax.tree.map(lambda x: x[0], a) if ax == 0 else a for a, ax in zip(args, in_axes)]
        return jax.tree.map(lambda x: x[None], fn(*one))

    return call


def compile_epoch(classifier, optimizer, builder, batch_size: int, max_traces: int = 1, mesh=None) -> Callable:
    """The jitted, seed-vmapped epoch:
    ``(stacked_state, data, keys[S], arrays, num_examples) -> (state, metrics[S])``.

    ``optimizer`` as in :func:`make_epoch_fn`; ``num_examples`` (an int or int32 scalar, default
    all rows of ``data``) is traced, so one compiled program serves every count that fits in the
    data's rows.  Buffers of the state are donated.  A per-instance trace counter turns an
    accidental recompilation between epochs into an error instead of a silent slowdown (``chex``'s
    counter is keyed on the code object, so it would also fire on the next ``train`` call).

    With a data ``mesh`` each batch is split over its devices (see :func:`make_epoch_fn`); every
    argument must then be on the mesh's devices (``parallel.replicate``) and the new state and
    metrics come back replicated.
    """
    epoch = make_epoch_fn(classifier, optimizer, builder, batch_size, mesh)
    traces = 0

    def seeds_epoch(state, data, keys, arrays=None, num_examples=None):
        nonlocal traces
        traces += 1
        if traces > max_traces:
            raise RetraceError(f"the training epoch was traced {traces} times; shapes or dtypes changed between epochs")
        if num_examples is None:
            num_examples = data["label"].shape[0]
        return over_seeds(epoch, in_axes=(0, None, 0, None, None))(state, data, keys, arrays, num_examples)

    if mesh is None:
        return jax.jit(seeds_epoch, donate_argnums=0)
    return jax.jit(seeds_epoch, donate_argnums=0, out_shardings=parallel.replicated(mesh))
