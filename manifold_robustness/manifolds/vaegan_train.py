"""Training the class VAE-GANs: all class models at once, one compiled program.

>>> result = vaegan_train.train(data.load("fashion_mnist", "train", dtype=np.uint8))   # paper settings
>>> vaegan.decode(result.vae, result.variables, z, labels)

The per-class models are one stacked pytree (leading model axis) and every training step is
``vmap``-ed over it: model k sees only images of its class ``classes[k]``, given as an index array
into the shared image array on the device (``rows`` int32[K, max count]).  Classes may hold
different numbers of images (CelebA's two, EMNIST's digits slightly).  An epoch is
⌈max count / batch⌉ steps for every model, and each model walks a fresh permutation of *its own*
images, wrapping around when it runs out: every image is seen every epoch, and a smaller class
sees some of its images twice (the larger ones when the count is not a multiple of the batch).
Every row is a real image, so nothing is masked and batch norm sees only real data.

Each model has its own key stream (:func:`vaegan.model_key`, by class label): its initialisation
and shuffling do not depend on which other classes train beside it, so a class trained alone
equals the same class trained in the stack (when the counts are equal: the permutations are drawn
at the stack's padded size).  The class-agnostic model is the same code with one model.

The optimiser is the classifiers' (:func:`training.loop.make_optimizer`: Adam (0.5, 0.9), coupled
L2 weight decay, learning rate decayed per batch), one Adam over the three networks' parameters,
which is the same as the original's three Adams because Adam is elementwise.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from manifold_robustness.manifolds import vaegan
from manifold_robustness.manifolds.vaegan_losses import gradients
from manifold_robustness.training import loop
from manifold_robustness.training.checkpoints import CheckpointStore
from manifold_robustness.training.trainer import device_data

log = logging.getLogger(__name__)

METRICS = ("l1", "kl", "gen", "dis")


@dataclasses.dataclass
class VAEGANResult:
    """Trained models (stacked variables, leading model axis) and per-epoch metrics, each float[K]."""

    vae: vaegan.VAEGAN
    variables: Any
    config: vaegan.VAEGANConfig
    history: list[dict]


def class_rows(labels: np.ndarray, classes: Sequence[int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of each model's images: int32[K, max count] (padded with row 0) and counts int32[K]."""
    labels = np.asarray(labels)
    groups = [np.arange(labels.size)] if classes is None else [np.flatnonzero(labels == c) for c in classes]
    counts = np.array([g.size for g in groups], np.int32)
    if counts.min() < 1:
        empty = [c for c, n in zip(classes or [None], counts) if n == 0]
        raise ValueError(f"no training images for classes {empty}")
    rows = np.zeros((len(groups), counts.max()), np.int32)
    for k, g in enumerate(groups):
        rows[k, : g.size] = g
    return rows, counts


def epoch_plan(key: jax.Array, rows: jax.Array, count: jax.Array, steps: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
    """One model's epoch: image rows int32[steps, B] (a permutation of its ``count`` images,
    wrapped around) and step keys [steps].  ``steps`` may exceed the epoch's (the chunks are
    padded to a whole number): the extra rows continue the wrap-around and are never run."""
    perm_key, step_key = jax.random.split(key)
    valid = jnp.arange(rows.shape[0]) < count
    order = jnp.argsort(jnp.where(valid, jax.random.uniform(perm_key, rows.shape), 2.0))  # valid rows first, shuffled
    positions = jnp.arange(steps * batch_size) % count
    return rows[order[positions]].reshape(steps, batch_size), jax.random.split(step_key, steps)


def make_steps_fn(vae: vaegan.VAEGAN, optimizer: optax.GradientTransformation, encoder_gan_weight: float) -> Callable:
    """``run(state, images, rows[S, B], keys[S], lam, count) -> (state, metrics[S])`` for one
    model; pure.  Runs the first ``count`` steps (may be traced; default S): one program serves
    every chunk length, and the metrics of the steps not run are zero."""

    def run(state, images, rows, keys, lam, count=None):
        count = rows.shape[0] if count is None else count

        def step(s, carry):
            variables, opt_state, metrics = carry
            x = images[rows[s]]
            x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x
            eps = jax.random.normal(keys[s], (x.shape[0], vae.latent_dim), jnp.float32)
            grads, stats, m = gradients(vae, variables, x, eps, lam, encoder_gan_weight)
            updates, opt_state = optimizer.update(grads, opt_state, variables["params"])
            params = optax.apply_updates(variables["params"], updates)
            metrics = {k: metrics[k].at[s].set(m[k]) for k in METRICS}
            return {"params": params, "batch_stats": stats}, opt_state, metrics

        zeros = {k: jnp.zeros(rows.shape[0], jnp.float32) for k in METRICS}
        carry = (state["variables"], state["opt_state"], zeros)
        variables, opt_state, metrics = jax.lax.fori_loop(0, count, step, carry)
        return {"variables": variables, "opt_state": opt_state}, metrics

    return run


def _step_config(config: vaegan.VAEGANConfig) -> tuple[loop.TrainConfig, float]:
    """What the compiled steps depend on: the optimiser settings (the number of epochs is not
    part of it, so runs of different lengths share one compiled program) and the encoder's GAN weight."""
    return dataclasses.replace(config.train, epochs=1), float(config.encoder_gan_weight)


OVER_MODELS = ("auto", "vmap", "map")


def resolve_over_models(over_models: str) -> str:
    """How the class models are stepped: "vmap" (all at once; a convolution over stacked weights
    is a grouped one) or "map" (``lax.map``: one model after another, ordinary batched
    convolutions).  "auto": "map" on CPU, where it measured faster
    (``benchmarks/vaegan_throughput.py``), "vmap" elsewhere."""
    if over_models not in OVER_MODELS:
        raise ValueError(f"over_models must be one of {OVER_MODELS}; got {over_models!r}")
    if over_models == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    return over_models


@functools.partial(jax.jit, static_argnames=("vae", "step_config", "over_models"), donate_argnames=("state",))
def run_steps(state, images, rows, keys, lams, count, steps_per_epoch, *, vae, step_config, over_models="auto"):
    """All models, a chunk of steps: state (leading model axis) → (state, metrics float[K, S]).

    images: uint8 or float32[capacity, H, W, C], shared; rows: int32[K, S, B]; keys: [K, S]; lams:
    float32[K]; count: the steps of the chunk to run (≤ S); steps_per_epoch: the schedule's.  The
    last three are traced and the static arguments hashable, so every call with the same model,
    optimiser settings and shapes (the trainer pads the images to a power of two and every chunk
    to S rows) reuses one compiled program, whatever the dataset's size.  ``over_models``
    (:func:`resolve_over_models`) changes the speed only: each model's steps are the same either
    way (up to float rounding).
    """
    train_config, encoder_gan_weight = step_config
    run = make_steps_fn(vae, loop.make_optimizer(train_config, steps_per_epoch), encoder_gan_weight)
    if resolve_over_models(over_models) == "map":
        one = lambda a: run(a[0], images, a[1], a[2], a[3], count)  # noqa: E731
        return jax.lax.map(one, (state, rows, keys, lams))
    return jax.vmap(run, in_axes=(0, None, 0, 0, 0, None))(state, images, rows, keys, lams, count)


@functools.partial(jax.jit, static_argnames=("steps", "batch_size"))
def _plans(keys, rows, counts, *, steps, batch_size):
    return jax.vmap(epoch_plan, in_axes=(0, 0, 0, None, None))(keys, rows, counts, steps, batch_size)


def init_state(config: vaegan.VAEGANConfig, variables: Any, steps_per_epoch: int) -> dict:
    """``{"variables", "opt_state"}`` with the model axis on every leaf (Adam's step count included)."""
    optimizer = loop.make_optimizer(config.train, steps_per_epoch)
    return {"variables": variables, "opt_state": jax.vmap(optimizer.init)(variables["params"])}


def _resolve_classes(classes, dataset) -> tuple[int, ...] | None:
    if classes is None:
        return None
    if isinstance(classes, str):
        if classes != "all":
            raise ValueError(f"classes must be 'all', None (one class-agnostic model) or a list of labels; got {classes!r}")
        return tuple(range(dataset.num_classes))
    classes = tuple(int(c) for c in classes)
    bad = [c for c in classes if not 0 <= c < dataset.num_classes]
    if bad:
        raise ValueError(f"classes {bad} are not labels of {dataset.name} (0..{dataset.num_classes - 1})")
    return classes


def train(
    dataset,
    config: vaegan.VAEGANConfig | None = None,
    *,
    classes: str | Sequence[int] | None = "all",
    seed: int = 0,
    checkpoint_dir: str | None = None,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
    conv: str = "auto",
    steps_per_call: int = 50,
    over_models: str = "auto",
) -> VAEGANResult:
    """Train one VAE-GAN per class of ``dataset`` (a :class:`data.Dataset`, uint8 or float32
    images), all at once.

    config: default the paper's for the dataset (:meth:`VAEGANConfig.paper`), else FONTS'.
    classes: "all" (one model per class, on all of that class's training images), a list of labels,
    or None for one class-agnostic model on all images.  With ``checkpoint_dir`` the state is
    saved after the first epoch, about once a minute and after the last (see
    :mod:`manifold_robustness.training.checkpoints`), and a restarted call resumes from the last
    save, ending equal to an uninterrupted run; a folder written by another config is refused.  ``progress`` shows a bar (steps);
    ``callback(epoch, metrics)`` runs after each epoch.  At most ``steps_per_call`` steps run per
    compiled call (the progress bar's granularity; it does not change the result), and the images
    are padded to a power of two, so datasets of similar size share the compiled steps.  Calling it
    again with a finished run's arguments and folder returns the trained models without training.
    ``over_models``: "vmap" or "map" over the class models (:func:`resolve_over_models`; speed only).
    """
    name = getattr(dataset, "name", None)
    if config is None:
        config = vaegan.VAEGANConfig.paper(name) if name in vaegan.PAPER_SETTINGS else vaegan.VAEGANConfig()
    if not isinstance(config, vaegan.VAEGANConfig):
        raise ValueError(f"config must be a VAEGANConfig; got {type(config).__name__}")
    classes = _resolve_classes(classes, dataset)
    over_models = resolve_over_models(over_models)
    input_shape = tuple(np.shape(dataset.images)[1:])
    data = device_data(dataset, input_shape, capacity=loop.bucket(len(dataset.labels)))
    rows_np, counts_np = class_rows(np.asarray(dataset.labels), classes)
    batch = config.train.batch_size
    steps = -(-int(counts_np.max()) // batch)
    key = jax.random.key(seed)
    vae, variables = vaegan.create(input_shape, config, classes, key, conv=conv)
    state = init_state(config, variables, steps)
    labels = [None] if classes is None else list(classes)
    lams = jnp.asarray([config.weight(c) for c in labels], jnp.float32)
    streams = [jax.random.fold_in(vaegan.model_key(key, c), 1) for c in labels]
    rows, counts = jnp.asarray(rows_np), jnp.asarray(counts_np)

    history: list[dict] = []
    start, store = 0, None
    if checkpoint_dir is not None:
        meta = {
            "kind": "vaegan", "dataset": name, "input_shape": list(input_shape),
            "classes": None if classes is None else list(classes), "counts": counts_np.tolist(), "seed": seed,
            "config": dataclasses.asdict(config),
        }
        store = CheckpointStore(checkpoint_dir, meta)
        if store.latest_step() is not None:
            start = int(store.latest_step())
            like = {"state": state, "history": {m: jnp.zeros((start, len(labels)), jnp.float32) for m in METRICS}}
            restored = store.restore(like)
            state = restored["state"]
            history = [{m: np.asarray(restored["history"][m][e]) for m in METRICS} for e in range(start)]
            log.info("resuming VAE-GAN training in %s from epoch %d", checkpoint_dir, start)

    state = jax.device_put(state, jax.local_devices()[0])  # committed, fresh or restored: one compiled program
    stack = dataclasses.replace(vae, classes=tuple(range(vae.num_models)))  # steps don't depend on which labels
    chunk = max(1, int(steps_per_call))  # every chunk S rows (the last one runs fewer): one program
    planned = -(-steps // chunk) * chunk
    bar = None
    if progress:
        from tqdm.auto import tqdm

        what = "class-agnostic" if classes is None else f"{len(classes)} classes"
        bar = tqdm(total=config.train.epochs * steps, initial=start * steps, unit="step",
                   desc=f"VAE-GAN {name or ''} ({what}, {steps} steps/epoch)")
    try:
        for epoch in range(start, config.train.epochs):
            keys = jnp.stack([jax.random.fold_in(s, epoch) for s in streams])
            plan_rows, plan_keys = _plans(keys, rows, counts, steps=planned, batch_size=batch)
            parts = []
            for a in range(0, steps, chunk):
                b = min(steps, a + chunk)
                part = (jax.lax.dynamic_slice_in_dim(x, a, chunk, axis=1) for x in (plan_rows, plan_keys))
                state, m = run_steps(state, data["image"], *part, lams, b - a, steps,
                                     vae=stack, step_config=_step_config(config), over_models=over_models)
                parts.append({k: np.asarray(v)[:, : b - a] for k, v in m.items()})
                if bar is not None:
                    bar.set_postfix(l1=f"{parts[-1]['l1'].mean():.3f}", dis=f"{parts[-1]['dis'].mean():.2f}")
                    bar.update(b - a)
            metrics = {k: np.concatenate([p[k] for p in parts], axis=1).mean(axis=1) for k in METRICS}
            history.append(metrics)
            if store is not None:
                packed = {k: jnp.asarray(np.stack([h[k] for h in history]), jnp.float32) for k in METRICS}
                store.save(epoch + 1, {"state": state, "history": packed}, last=epoch + 1 == config.train.epochs)
            if callback is not None:
                callback(epoch, metrics)
    finally:
        if bar is not None:
            bar.close()
        if store is not None:
            store.close()
    return VAEGANResult(vae, state["variables"], config, history)
