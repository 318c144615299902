"""``train()``: the shell around the pure epoch — data on device, seeds, checkpoints, progress.

>>> clf, _ = models.create("cnn", (28, 28, 1), 10, jax.random.key(0))
>>> result = train(clf, "normal", data.load("fonts", "train", limit=1000), seeds=[0, 1, 2, 3, 4],
...                test_data=data.load("fonts", "test", limit=2000))
>>> result.test["error"]          # float[5]: one test error per seed
>>> result.variables_for(0)       # seed 0's variables, for attacks (clf.logits_fn(...))

On several devices, ``train(..., mesh="auto")`` (or ``mesh=parallel.data_mesh()``) splits every
batch over them; see :mod:`manifold_robustness.parallel`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from manifold_robustness import models, parallel, transforms
from manifold_robustness.training import loop
from manifold_robustness.training.checkpoints import CheckpointStore
from manifold_robustness.training.methods import METHODS, MethodContext, make_builder

log = logging.getLogger(__name__)

EXTRA_FIELDS = ("font_ids", "theta")  # Dataset fields that travel with the batch (FONTS)


@dataclasses.dataclass
class TrainResult:
    """Trained variables with a leading seed axis, per-epoch metrics and the final test metrics."""

    classifier: models.Classifier
    seeds: tuple[int, ...]
    variables: Any
    history: list[dict]
    test: dict | None
    opt_state: Any = None  # the optimiser state after the last epoch (leading seed axis)

    def variables_for(self, index: int) -> Any:
        """The variables of the ``index``-th seed (no seed axis)."""
        return jax.tree.map(lambda x: x[index], self.variables)


def default_ranges(dataset_name: str | None) -> transforms.TransformRanges:
    """Transformation ranges of a dataset with its default options (``data.specs``: FONTS' own,
    Hard; EMNIST / F-MNIST / CelebA the affine box); the affine box for any other dataset."""
    from manifold_robustness.data import specs

    spec = specs.SPECS.get(dataset_name)
    return spec.ranges({}) if spec is not None else transforms.AFFINE_ATTACK_RANGES


def device_data(dataset, input_shape: Sequence[int], extra_arrays: dict | None = None,
                capacity: int | None = None) -> dict[str, jax.Array]:
    """Move a dataset's arrays to the device once (uint8 images stay uint8), validating them.
    ``extra_arrays`` adds per-example arrays (e.g. ``latent``: the VAE-GAN codes of the images);
    ``capacity`` appends zero rows up to that many (on the host, before the one transfer)."""
    if not (hasattr(dataset, "images") and hasattr(dataset, "labels")):
        raise TypeError(f"the training / test data must be a data.Dataset (with .images and .labels, e.g. "
                        f"data.load('fonts', 'train')); got {type(dataset).__name__}")
    images = np.asarray(dataset.images)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(input_shape):
        raise ValueError(f"images must be [N, {', '.join(map(str, input_shape))}] for this model; got {images.shape}")
    if images.dtype == np.float32:
        models.check_range(images, "float32 images")
    elif images.dtype != np.uint8:
        raise ValueError(f"images must be float32 in [0, 1] or uint8; got {images.dtype}")
    labels = np.asarray(dataset.labels)
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must be int[{images.shape[0]}]; got shape {labels.shape}")
    data = {"image": images, "label": labels.astype(np.int32)}
    for field in EXTRA_FIELDS:
        value = getattr(dataset, field, None)
        if value is not None:
            data[field.rstrip("s") if field == "font_ids" else field] = np.asarray(value)
    for name, value in (extra_arrays or {}).items():
        if np.shape(value)[:1] != (images.shape[0],):
            raise ValueError(f"extra array {name!r} must have one row per example ({images.shape[0]}); got {np.shape(value)}")
        data[name] = np.asarray(value)
    n = images.shape[0]
    if capacity is not None and capacity < n:
        raise ValueError(f"capacity {capacity} is below the {n} training examples; pass capacity >= {n} (or None)")
    pad = 0 if capacity is None else capacity - n
    return {k: jnp.asarray(np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)]) if pad else v)
            for k, v in data.items()}


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def train(
    classifier: models.Classifier,
    method: str,
    train_data,
    *,
    seeds: Sequence[int] = (0,),
    config: loop.TrainConfig = loop.TrainConfig(),
    test_data=None,
    context: MethodContext | None = None,
    checkpoint_dir: str | None = None,
    run_config: dict | None = None,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
    extra_arrays: dict | None = None,
    mesh: parallel.MeshArg = None,
    capacity: int | None = None,
) -> TrainResult:
    """Train one model per seed with ``method`` on ``train_data`` (a :class:`data.Dataset`).

    All seeds train in one compiled program under ``vmap``.  With ``checkpoint_dir``, the state is
    saved after the first epoch, then about once a minute, and after the last (last 2 kept;
    :mod:`.checkpoints`) and a restarted call resumes from the last saved epoch and ends
    with the same parameters as an uninterrupted run; a folder written by another config is refused.
    ``callback(epoch, metrics)`` runs after each epoch (metrics hold per-seed arrays).
    ``context`` carries what a method needs (transformation ranges, FONTS prototypes, a decoder);
    ``extra_arrays`` are per-example arrays that travel with each batch (e.g. ``latent`` codes).

    ``mesh``: None (default) runs the single-device program; a data mesh
    (:func:`parallel.data_mesh`) splits each training and test batch along its example axis over
    the mesh's devices, with the dataset, parameters and optimiser state replicated; ``"auto"``
    means a data mesh over all devices when there are several, else None.  With a mesh,
    ``config.batch_size`` must be a multiple of the device count (ValueError otherwise); the
    result matches the single-device run up to float rounding (batch-norm statistics are still
    over the whole batch).  Checkpoints do not record the mesh: a run may resume on another one.

    ``capacity``: the rows the compiled epoch holds (the data is padded up to it; the padding is
    never trained on).  The number of examples is traced, so runs of one architecture and method
    whose N fit one capacity share a compiled program, and the result does not depend on the
    capacity.  Default: the next power of two (:func:`loop.bucket`); the runner passes its grid's
    largest N, so every N of a method compiles once.
    """
    if method not in METHODS:
        make_builder(method, MethodContext(classifier))  # raises the error that lists the methods
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    mesh = parallel.resolve_mesh(mesh)
    if mesh is not None:
        parallel.check_divisible(
            config.batch_size, mesh, "training batch size (TrainConfig.batch_size)", remedy=parallel.FEWER_DEVICES
        )
    n = len(train_data.labels) if hasattr(train_data, "labels") else 0  # device_data says what is wrong
    capacity = loop.bucket(n, config.batch_size) if capacity is None else int(capacity)
    data = device_data(train_data, classifier.input_shape, extra_arrays, capacity=capacity)
    if int(np.max(np.asarray(train_data.labels), initial=0)) >= classifier.num_classes or int(np.min(np.asarray(train_data.labels), initial=0)) < 0:
        raise ValueError(f"labels must lie in [0, {classifier.num_classes - 1}] for this model")
    context = context or MethodContext(classifier, ranges=default_ranges(getattr(train_data, "name", None)))
    _check_decoder(context, data, n)
    optimizer = functools.partial(loop.make_optimizer, config)  # of the steps per epoch, traced
    epoch_fn = _epoch_fn(classifier, method, context, config, optimizer, mesh, (data, context.arrays),
                         len(seeds))
    place = (lambda tree: parallel.replicate(tree, mesh)) if mesh is not None else (lambda tree: tree)
    data, arrays = place(data), place(context.arrays)

    seed_keys = [jax.random.key(s) for s in seeds]
    state = _stack([loop.init_state(models.init_variables(classifier, jax.random.fold_in(k, 0)), optimizer(1))
                    for k in seed_keys])
    history: list[dict] = []
    start = 0
    store = None
    if checkpoint_dir is not None:
        meta = {
            "architecture": classifier.name,
            "input_shape": list(classifier.input_shape),
            "num_classes": classifier.num_classes,
            "method": method,
            "num_examples": n,
            "seeds": list(seeds),
            "train_config": dataclasses.asdict(config),
            **(run_config or {}),
        }
        store = CheckpointStore(checkpoint_dir, meta)
        if store.latest_step() is not None:
            restored = store.restore({"state": state, "history": _history_like(len(seeds), store.latest_step())})
            state, start = restored["state"], int(store.latest_step())
            history = _unpack_history(restored["history"])
            log.info("resuming %s from epoch %d", checkpoint_dir, start)
    # Committed on its device either way: a restored state comes back committed, and a fresh
    # uncommitted one would compile a second program (another cache key) for the same epoch.
    state = place(state) if mesh is not None else jax.device_put(state, jax.local_devices()[0])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=start, desc=f"{classifier.name}/{method} N={n} x{len(seeds)} seeds", unit="epoch")
    try:
        for epoch in range(start, config.epochs):
            keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(k, 1), epoch) for k in seed_keys])
            state, metrics = epoch_fn(state, data, place(keys), arrays, n)
            metrics = {k: np.asarray(v) for k, v in metrics.items()}
            history.append(metrics)
            if store is not None:
                store.save(epoch + 1, {"state": state, "history": _pack_history(history)}, last=epoch + 1 == config.epochs)
            if bar is not None:
                bar.set_postfix(loss=f"{metrics['loss'].mean():.3f}", err=f"{metrics['error'].mean():.3f}")
                bar.update(1)
            if callback is not None:
                callback(epoch, metrics)
    finally:
        if bar is not None:
            bar.close()
        if store is not None:
            store.close()

    variables = state["variables"]
    test = evaluate(classifier, variables, test_data, config.eval_batch_size, mesh=mesh) if test_data is not None else None
    return TrainResult(classifier, seeds, variables, history, test, state["opt_state"])


# The compiled epochs of this process, for the next ``train`` call that would trace the same
# program again: the same classifier, method, context settings, optimiser settings, mesh and input
# shapes (the runner's next N in one capacity, a resumed run, a notebook cell run twice).  Tracing
# and lowering a tiny CNN's regular-AT epoch and fetching it from the persistent compilation cache
# took ~2 s (2-core AVX2 machine).  The last few are kept: each holds its context's objects.
_EPOCHS: collections.OrderedDict = collections.OrderedDict()
EPOCHS_KEPT = 4


class _Same:
    """An object as a key by identity (kept alive by the key, so its id is not reused)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self) -> int:
        return id(self.obj)

    def __eq__(self, other) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj


def _frozen(value) -> Any:
    """A hashable stand-in for a setting: containers by content, arrays and scalars by value, other
    objects (functions, manifolds, the classifier) as themselves, by identity unless hashable."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return type(value).__name__, tuple(_frozen(v) for v in value)
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        return ("array", np.shape(value), str(np.result_type(value)), np.asarray(value).tobytes())
    try:
        hash(value)
    except TypeError:
        return _Same(value)
    return value


def _signature(tree) -> tuple:
    """Tree structure and leaf shapes and dtypes: what a compiled program's inputs look like."""
    leaves, structure = jax.tree_util.tree_flatten(tree)
    return structure, tuple((np.shape(x), str(np.result_type(x))) for x in leaves)


def _epoch_fn(classifier, method: str, context: MethodContext, config: loop.TrainConfig, optimizer, mesh,
              inputs, num_seeds: int) -> Callable:
    """The compiled epoch for these settings, traced once per process (see :data:`_EPOCHS`);
    ``optimizer``: ``config``'s (the key holds ``config``).
    ``inputs`` (the data and the context's arrays) and ``num_seeds`` fix the shapes the epoch is
    called with; they are part of the key, so a reused epoch is never traced twice
    (``compile_epoch``'s retrace check stays a check)."""
    settings = {f.name: getattr(context, f.name) for f in dataclasses.fields(context) if f.name != "arrays"}
    key = (classifier, method, _frozen(settings), dataclasses.replace(config, epochs=1, eval_batch_size=1),
           mesh, _signature(inputs), int(num_seeds))
    if key in _EPOCHS:
        _EPOCHS.move_to_end(key)
        return _EPOCHS[key]
    fn = loop.compile_epoch(classifier, optimizer, make_builder(method, context), config.batch_size, mesh=mesh)
    _EPOCHS[key] = fn
    while len(_EPOCHS) > EPOCHS_KEPT:
        _EPOCHS.popitem(last=False)
    return fn


def _check_decoder(context: MethodContext, data: dict, n: int) -> None:
    """Inside the compiled epoch the decoder sees traced labels, which it cannot check (a label
    without a model would read another class's); decode one example of each label here, with
    concrete values, so the decoder's own checks (``vaegan.check_labels``) run (on the first
    ``n`` rows: the padding's labels are not real)."""
    if context.decode_fn is None or "latent" not in data or "decoder" not in (context.arrays or {}):
        return
    labels = np.asarray(data["label"][:n])
    _, first = np.unique(labels, return_index=True)
    context.decode_fn(context.arrays["decoder"], data["latent"][first], jnp.asarray(labels[first]))


def _pack_history(history: list[dict]) -> dict:
    return {k: jnp.stack([h[k] for h in history]) for k in ("loss", "error")}


def _history_like(num_seeds: int, epochs: int) -> dict:
    return {k: jnp.zeros((epochs, num_seeds), jnp.float32) for k in ("loss", "error")}


def _unpack_history(packed: dict) -> list[dict]:
    return [{k: np.asarray(packed[k][e]) for k in packed} for e in range(packed["loss"].shape[0])]


def evaluate(
    classifier: models.Classifier, variables, dataset, batch_size: int = 500, mesh: parallel.MeshArg = None
) -> dict[str, np.ndarray]:
    """Test error and loss (eval mode) of stacked variables (leading seed axis) → arrays [seeds].

    ``mesh`` as in :func:`train`: with a data mesh each test batch is split over its devices and
    ``batch_size`` is rounded up to a multiple of the device count (the padded rows are masked,
    and in eval mode the result does not depend on the batch size).
    """
    mesh = parallel.resolve_mesh(mesh)
    data = device_data(dataset, classifier.input_shape)
    if mesh is not None:
        batch_size = parallel.pad_to_multiple(batch_size, mesh)
        data, variables = parallel.replicate((data, variables), mesh)
    fn = jax.jit(loop.over_seeds(loop.make_eval_fn(classifier, batch_size, mesh), in_axes=(0, None, None)))
    out = parallel.to_host(fn(variables, data["image"], data["label"]))
    return {k: np.asarray(v) for k, v in out.items()}
