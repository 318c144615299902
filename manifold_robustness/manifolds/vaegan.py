"""Class-specific VAE-GANs: the learned manifolds of EMNIST, Fashion-MNIST, CelebA (and FONTS).

One VAE-GAN per class (paper §3.2; reference digest code §4.2), or one class-agnostic model.  The
models are data plus pure functions: :func:`create` gives a static :class:`VAEGAN` (shapes, the
three NNX graph definitions) and ``variables`` = ``{"params": {"encoder", "decoder",
"discriminator"}, "batch_stats": {…}}`` with a leading *model axis* (one entry per class), so all
class models train at once under ``vmap`` (:mod:`.vaegan_train`).  What attacks and on-manifold
training call:

>>> z = vaegan.encode(vae, variables, images, labels)      # float32[B, d]: each class's encoder mean μ
>>> x = vaegan.decode(vae, variables, z, labels)           # float32[B, H, W, C] in (0, 1)

Each example is routed to the model of its label; batch norm runs in eval mode (running
statistics).  Both are pure, differentiable, jit- and vmap-safe.  A class-agnostic model
(``classes=None``) ignores the labels.  To plug the models into on-manifold training and the
on-learned-manifold attack, :func:`latent_codes` encodes a dataset and :func:`decoder_fn` gives the
``decode_fn(variables, z, labels)`` both take.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from manifold_robustness import models
from manifold_robustness.manifolds.vaegan_nets import Decoder, Discriminator, Encoder
from manifold_robustness.training.loop import TrainConfig

NETS = ("encoder", "decoder", "discriminator")
AGNOSTIC_STREAM = 1_000_003  # key stream of a class-agnostic model, apart from every class label's
LATENT_BOX = 2.0  # samples and attacks live in [−2, 2]^d (paper §2.2)


@dataclasses.dataclass(frozen=True)
class VAEGANConfig:
    """Architecture, losses and schedule.  The defaults are FONTS'; :meth:`paper` gives each
    dataset's.  Sources: reference digest paper §3.2 ("paper") and code §4.2 ("code")."""

    latent_dim: int = 10  # paper: [−2, 2]^10; code: 10, but 25 on CelebA
    reconstruction_weight: float = 3.0  # λ on the L1 term; paper: FONTS 3, EMNIST 2.5, F-MNIST 2.75, CelebA 3
    class_weights: tuple[tuple[int, float], ...] = ()  # paper: per-class λ where it differs (EMNIST 0, 1, 8)
    agnostic_weight: float = 3.0  # λ of the class-agnostic model; paper: 3 / 3 / 2.75 / 3
    encoder_gan_weight: float = 0.0  # paper: L_enc = λ·L1 + KL; code: the encoder also gets the GAN term (1)
    channels: int = 64  # paper: 64, 128, 256 (, 512 on CelebA)
    kernels: tuple[int, int, int] = (4, 4, 4)  # encoder, decoder, discriminator; paper 4×4; code (4, 6, 6)
    # paper: Adam lr 0.005 ×0.9 per epoch, weight decay 1e-4, batch 100; code: betas (0.5, 0.9),
    # coupled L2, per-batch decay; epochs paper: FONTS 10, EMNIST 30, F-MNIST 60, CelebA 30
    train: TrainConfig = TrainConfig(epochs=10, learning_rate=0.005, lr_decay=0.9, weight_decay=1e-4, batch_size=100)

    def __post_init__(self):
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1; got {self.latent_dim}")
        if self.reconstruction_weight <= 0 or self.agnostic_weight <= 0 or any(w <= 0 for _, w in self.class_weights):
            raise ValueError("reconstruction weights (λ) must be > 0")
        if len(self.kernels) != 3:
            raise ValueError(f"kernels must be (encoder, decoder, discriminator); got {self.kernels}")

    @classmethod
    def paper(cls, dataset: str, **overrides) -> "VAEGANConfig":
        """The paper's settings for ``dataset`` ("fonts", "emnist", "fashion_mnist", "celeba");
        ``overrides`` replace fields, e.g. ``latent_dim=25`` for the original code's CelebA."""
        if dataset not in PAPER_SETTINGS:
            raise ValueError(f"no paper VAE-GAN settings for {dataset!r}; known: {', '.join(PAPER_SETTINGS)}")
        lam, per_class, agnostic, epochs = PAPER_SETTINGS[dataset]
        train = dataclasses.replace(cls.train, epochs=epochs)
        fields = dict(reconstruction_weight=lam, class_weights=per_class, agnostic_weight=agnostic, train=train)
        return cls(**{**fields, **overrides})

    def weight(self, label: int | None) -> float:
        """λ of the model for ``label`` (None: the class-agnostic model)."""
        if label is None:
            return self.agnostic_weight
        return dict(self.class_weights).get(int(label), self.reconstruction_weight)


# dataset: (λ, per-class λ, class-agnostic λ, epochs) — paper §3.2 / supplement B.2
PAPER_SETTINGS = {
    "fonts": (3.0, (), 3.0, 10),
    "emnist": (2.5, ((0, 2.75), (1, 5.6), (8, 2.25)), 3.0, 30),
    "fashion_mnist": (2.75, (), 2.75, 60),
    "celeba": (3.0, (), 3.0, 30),
}


@dataclasses.dataclass(frozen=True)
class VAEGAN:
    """The static half of a stack of VAE-GANs: shapes, which labels the models serve, NNX graphs.

    ``classes``: the label each model serves, in model-axis order; None for one class-agnostic
    model.  Hashable on everything but the graphs (which the other fields determine), so it can be
    a static argument of ``jax.jit``.
    """

    input_shape: tuple[int, int, int]
    latent_dim: int
    classes: tuple[int, ...] | None
    channels: int = 64
    kernels: tuple[int, int, int] = (4, 4, 4)
    conv: str = "auto"
    graphs: tuple = dataclasses.field(default=(), compare=False, repr=False)  # (encoder, decoder, discriminator)

    @property
    def num_models(self) -> int:
        return 1 if self.classes is None else len(self.classes)

    @property
    def class_agnostic(self) -> bool:
        return self.classes is None

    def graph(self, net: str):
        return self.graphs[NETS.index(net)]


def net_variables(variables: Any, net: str) -> dict:
    """``{"params", "batch_stats"}`` of one network ("encoder", "decoder" or "discriminator")."""
    return {"params": variables["params"][net], "batch_stats": variables["batch_stats"][net]}


def model_key(key: jax.Array, label: int | None) -> jax.Array:
    """A model's key stream: one per class label, so a class model's initialisation and shuffling
    do not depend on which other classes train beside it."""
    return jax.random.fold_in(key, AGNOSTIC_STREAM if label is None else int(label))


def _modules(vae: VAEGAN, key: jax.Array) -> list[nnx.Module]:
    k_enc, k_dec, k_dis = (jax.random.fold_in(key, i) for i in range(3))
    opts = dict(channels=vae.channels, conv=vae.conv)
    return [
        Encoder(vae.input_shape, vae.latent_dim, kernel=vae.kernels[0], rngs=nnx.Rngs(params=k_enc), **opts),
        Decoder(vae.input_shape, vae.latent_dim, kernel=vae.kernels[1], rngs=nnx.Rngs(params=k_dec), **opts),
        Discriminator(vae.input_shape, kernel=vae.kernels[2], rngs=nnx.Rngs(params=k_dis), **opts),
    ]


def _split(modules: list[nnx.Module]) -> tuple[tuple, dict]:
    graphs, params, stats = zip(*(nnx.split(m, nnx.Param, nnx.BatchStat) for m in modules))
    return tuple(graphs), {"params": dict(zip(NETS, params)), "batch_stats": dict(zip(NETS, stats))}


def build(input_shape: Sequence[int], config: VAEGANConfig, classes: Sequence[int] | None, *, conv: str = "auto") -> VAEGAN:
    """The static :class:`VAEGAN` for one model per label in ``classes`` (None: one
    class-agnostic model); no parameters are made (see :func:`init_variables`, :func:`create`)."""
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (height, width, channels); got {input_shape}")
    if classes is not None:
        classes = tuple(int(c) for c in classes)
        if not classes or len(set(classes)) != len(classes) or min(classes) < 0:
            raise ValueError(f"classes must be distinct labels >= 0 (or None for one class-agnostic model); got {classes}")
    vae = VAEGAN(input_shape, config.latent_dim, classes, config.channels, tuple(config.kernels), conv)
    graphs, _ = _split(nnx.eval_shape(lambda: _modules(vae, jax.random.key(0))))  # graphs only, no compute
    return dataclasses.replace(vae, graphs=graphs)


def create(
    input_shape: Sequence[int], config: VAEGANConfig, classes: Sequence[int] | None, key: jax.Array, *, conv: str = "auto"
) -> tuple[VAEGAN, Any]:
    """Build one VAE-GAN per label in ``classes`` (None: one class-agnostic model) → (vae, variables).

    input_shape: (H, W, C), e.g. (28, 28, 1) or CelebA's (56, 48, 3).  Model i is initialised from
    ``fold_in(model_key(key, classes[i]), 0)``.  ``conv`` picks how (transposed) convolutions are
    computed ("auto" | "xla" | "patches", :mod:`manifold_robustness.models.conv`); it changes speed only.
    """
    vae = build(input_shape, config, classes, conv=conv)
    return vae, init_variables(vae, key)


def init_variables(vae: VAEGAN, key: jax.Array) -> Any:
    """Fresh stacked variables (leading model axis) for ``vae`` from a seed key."""
    labels = [None] if vae.classes is None else list(vae.classes)
    # Eager NNX builds: ~0.05 s per model once each random-init shape has compiled (the first
    # build in a process pays ~8 s of threefry compilation; jit + vmap here compiled for longer).
    per_model = [_split(_modules(vae, jax.random.fold_in(model_key(key, c), 0)))[1] for c in labels]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *per_model)


def count_params(variables: Any) -> dict[str, int]:
    """Trainable parameters of *one* model, per network (the model axis is not counted)."""
    return {net: int(sum(np.prod(np.shape(x)[1:]) for x in jax.tree.leaves(variables["params"][net]))) for net in NETS}


# --- routing: every example to the model of its label -------------------------------------------


def check_labels(vae: VAEGAN, labels, batch: int) -> None:
    """Boundary check of labels for ``batch`` examples: int[batch], each one of ``vae.classes``
    (values are checked when concrete; inside ``jit`` an unknown label reads a clamped model)."""
    if vae.class_agnostic and labels is None:
        return
    if labels is None:
        raise ValueError(f"class-specific VAE-GANs need labels int[{batch}] to pick each example's model")
    shape = tuple(np.shape(labels))
    if shape != (batch,):
        raise ValueError(f"labels must be int[{batch}] (one per example); got shape {shape}")
    if not jnp.issubdtype(jnp.result_type(labels), jnp.integer):
        raise ValueError(f"labels must be integers; got dtype {jnp.result_type(labels)}")
    if vae.class_agnostic or isinstance(labels, jax.core.Tracer):
        return
    unknown = sorted(set(np.asarray(labels).tolist()) - set(vae.classes))
    if unknown:
        raise ValueError(f"labels {unknown[:10]} have no trained model; this VAE-GAN serves classes {list(vae.classes)}")


def model_index(vae: VAEGAN, labels) -> jax.Array:
    """int32[B]: the position on the model axis of each label's model (0 for a class-agnostic model)."""
    if vae.class_agnostic:
        return jnp.zeros(np.shape(labels)[:1] if labels is not None else (), jnp.int32)
    labels = jnp.asarray(labels, jnp.int32)
    if vae.classes == tuple(range(len(vae.classes))):
        return jnp.clip(labels, 0, len(vae.classes) - 1)
    table = np.zeros(max(vae.classes) + 1, np.int32)
    table[list(vae.classes)] = np.arange(len(vae.classes))
    return jnp.asarray(table)[jnp.clip(labels, 0, table.size - 1)]


ROUTES = ("sorted", "gather", "select")


def _check_route(route: str) -> None:
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}; got {route!r}")


def _tiles(rows: int, models: int) -> tuple[int, int]:
    """(tile size T, tile count S) of the "sorted" route: T = ⌈rows / 2·models⌉ and
    S = ⌈rows / T⌉ + models − 1, enough for any split of the rows over the models (model k's
    n_k rows take ⌈n_k / T⌉ ≤ n_k / T + 1 − 1/T tiles)."""
    t = -(-rows // (2 * models))
    return t, min(-(-rows // t) + models - 1, rows)


def _sorted_slots(idx: jax.Array, models: int, t: int, s: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Each row's slot in a [S·T] buffer cut into tiles of T rows of one model each, each tile's
    model, and the number of tiles in use: model k's rows fill its tiles in row order, the models'
    tiles follow each other from tile 0, and the tiles past them are unused."""
    counts = jnp.bincount(idx, length=models)
    tiles = -(-counts // t)
    tile_end = jnp.cumsum(tiles)
    first_row = jnp.cumsum(counts) - counts  # where model k's rows begin in label order
    order = jnp.argsort(idx, stable=True)
    rank = jnp.zeros_like(idx).at[order].set(jnp.arange(idx.shape[0], dtype=idx.dtype)) - first_row[idx]
    slot = (tile_end - tiles)[idx] * t + rank
    tile_model = jnp.minimum(jnp.searchsorted(tile_end, jnp.arange(s), side="right"), models - 1)
    return slot, tile_model, tile_end[-1]


def _route(vae: VAEGAN, net_vars: dict, graph, inputs: jax.Array, labels, route: str) -> Any:
    """Apply each example's model (eval mode).  The same function every way (tests check it):

    - "sorted" (default): inside the compiled program, place the rows in tiles of
      T = ⌈B / 2K⌉ rows that each hold one model's rows (K models; ⌈B / T⌉ + K − 1 tiles cover
      any labels), and run the tiles one after another (``lax.map``) as ordinary batched applies
      of their model, skipping unused tiles (``lax.cond``); then put the outputs back in row
      order.  At most ~1.5× the rows are computed (the last tile of each model is partly empty).
    - "gather": gather each example's parameters and run them one example at a time under vmap
      (convolutions over per-example weights are grouped ones); memory grows with batch × one
      model's parameters (~2.7 MB per example for the 28×28 decoder).
    - "select": run every model on the whole batch and keep each example's own output: K× the
      work; memory grows with classes × activations.
    Measured side by side on 2 shared CPU cores (28×28, 10 classes, random labels, best of 5,
    ``benchmarks/vaegan_throughput.py --routing``), at 100 / 500 rows: decode + gradient w.r.t. z
    sorted 142 / 447 ms, gather 350 / 2241, select 1113 / 6839; one model applied to every row
    at once (what class-homogeneous batches would allow) 107 / 572 ms — so sorting inside the
    program costs little or nothing over batching by class outside it.  Encode: sorted 47 / 217,
    gather 219 / 1130 ms.
    """
    apply = lambda v, x: models.apply_graph(graph, v, x, train=False)[0]  # noqa: E731
    if vae.num_models == 1:
        return apply(jax.tree.map(lambda a: a[0], net_vars), inputs)
    idx = model_index(vae, labels)
    if route == "sorted":
        t, s = _tiles(inputs.shape[0], vae.num_models)
        slot, tile_model, used = _sorted_slots(idx, vae.num_models, t, s)
        buf = jnp.zeros((s * t,) + inputs.shape[1:], inputs.dtype).at[slot].set(inputs, unique_indices=True)

        def tile(a):
            k, i, x = a
            run = lambda x: apply(jax.tree.map(lambda p: p[k], net_vars), x)  # noqa: E731
            empty = lambda x: jax.tree.map(lambda o: jnp.zeros(o.shape, o.dtype), jax.eval_shape(run, x))  # noqa: E731
            return jax.lax.cond(i < used, run, empty, x)

        outs = jax.lax.map(tile, (tile_model, jnp.arange(s), buf.reshape((s, t) + inputs.shape[1:])))
        return jax.tree.map(lambda o: o.reshape((s * t,) + o.shape[2:])[slot], outs)
    if route == "select":
        outs = jax.vmap(apply, in_axes=(0, None))(net_vars, inputs)  # [K, B, ...] per output
        rows = jnp.arange(inputs.shape[0])
        return jax.tree.map(lambda o: o[idx, rows], outs)
    if route == "gather":
        per_example = jax.tree.map(lambda a: a[idx], net_vars)
        one = lambda v, x: jax.tree.map(lambda o: o[0], apply(v, x[None]))  # noqa: E731
        return jax.vmap(one)(per_example, inputs)
    raise ValueError(f"route must be one of {ROUTES}; got {route!r}")


def encode(vae: VAEGAN, variables: Any, images: jax.Array, labels=None, *, route: str = "sorted") -> jax.Array:
    """Latent codes: the encoder mean μ of each example's class model (eval mode).

    images: float32[B, H, W, C] in [0, 1]; labels: int[B] among ``vae.classes`` (ignored, may be
    None, for a class-agnostic model).  Returns float32[B, latent_dim].
    """
    models.check_images(images, vae.input_shape)
    check_labels(vae, labels, images.shape[0])
    _check_route(route)
    return _encode(vae, variables, images, labels, route)


def decode(vae: VAEGAN, variables: Any, latents: jax.Array, labels=None, *, route: str = "sorted") -> jax.Array:
    """Images from latent codes with each example's class decoder (eval mode).

    latents: float32[B, latent_dim]; labels: int[B] among ``vae.classes`` (ignored for a
    class-agnostic model).  Returns float32[B, H, W, C] in (0, 1).  Concrete labels are checked;
    under a caller's ``jit`` they cannot be, and a label without a model reads a clamped one, so
    check the labels before (:func:`check_labels`), as the library's trainer and runner do.
    """
    shape = tuple(np.shape(latents))
    if len(shape) != 2 or shape[1] != vae.latent_dim:
        raise ValueError(f"latents must be float32[batch, {vae.latent_dim}] (this VAE-GAN's latent size is {vae.latent_dim}); got shape {shape}")
    if not jnp.issubdtype(jnp.result_type(latents), jnp.floating):
        raise ValueError(f"latents must be float32; got dtype {jnp.result_type(latents)}")
    check_labels(vae, labels, shape[0])
    _check_route(route)
    return _decode(vae, variables, jnp.asarray(latents, jnp.float32), labels, route)


# Validation above runs eagerly; the computation is jitted so that eager calls run one compiled
# program instead of dispatching (and compiling) op by op.  Inside an outer jit they are inlined.
@functools.partial(jax.jit, static_argnames=("vae", "route"))
def _encode(vae: VAEGAN, variables: Any, images: jax.Array, labels, route: str) -> jax.Array:
    return _route(vae, net_variables(variables, "encoder"), vae.graph("encoder"), images, labels, route)[0]


@functools.partial(jax.jit, static_argnames=("vae", "route"))
def _decode(vae: VAEGAN, variables: Any, latents: jax.Array, labels, route: str) -> jax.Array:
    return _route(vae, net_variables(variables, "decoder"), vae.graph("decoder"), latents, labels, route)


def reconstruct(vae: VAEGAN, variables: Any, images: jax.Array, labels=None) -> jax.Array:
    """decode(encode(x)): float32[B, H, W, C] → float32[B, H, W, C] (eval mode, means, no sampling)."""
    return decode(vae, variables, encode(vae, variables, images, labels), labels)


def decoder_fn(vae: VAEGAN, *, route: str = "sorted") -> Callable[[Any, jax.Array, Any], jax.Array]:
    """``fn(variables, z, labels) -> images``: :func:`decode` with ``vae`` bound, in the signature
    the learned-manifold code calls a decoder with.

    z: float32[B, latent_dim]; labels: int[B] among ``vae.classes`` (None for a class-agnostic
    model); images: float32[B, H, W, C] in (0, 1).  The same function serves as
    ``training.MethodContext(decode_fn=fn, arrays={"decoder": variables})`` (on-manifold
    training), ``attacks.make("on_learned_manifold", decode_fn=fn)`` called with
    ``context=variables``, and :func:`manifold_robustness.manifolds.projection.project_learned`.
    Equal ``vae`` and ``route`` give the *same* function object, so programs compiled with it as a
    static argument are reused.
    """
    _check_route(route)
    return _decoder_fn(vae, route)


@functools.lru_cache(maxsize=64)
def _decoder_fn(vae: VAEGAN, route: str):
    def fn(variables: Any, latents: jax.Array, labels=None) -> jax.Array:
        return decode(vae, variables, latents, labels, route=route)

    fn.__qualname__ = fn.__name__ = f"decode_{'agnostic' if vae.class_agnostic else 'classes'}"
    return fn


def latent_codes(vae: VAEGAN, variables: Any, images, labels=None, batch_size: int = 500) -> jax.Array:
    """The codes of a whole dataset, encoded in fixed-size chunks (one compiled shape).

    images: uint8[N, H, W, C] (divided by 255) or float32 in [0, 1]; labels: int[N] among
    ``vae.classes`` (None for a class-agnostic model).  Returns float32[N, latent_dim], each row
    its class encoder's mean: the ``latent`` per-example array of learned-manifold training
    (``training.train(..., extra_arrays={"latent": codes})``) and attacks (``batch["latent"]``).
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / np.float32(255.0)
    n = images.shape[0] if images.ndim else 0
    labels = None if labels is None else np.asarray(labels)
    check_labels(vae, labels, n)  # every label up front, not chunk by chunk
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    out = []
    for a in range(0, n, batch_size):
        x = images[a : a + batch_size]
        y = None if labels is None else labels[a : a + batch_size]
        pad = batch_size - len(x) if n > batch_size else 0  # pad the last chunk with its own first row
        if pad:
            x = np.concatenate([x, np.repeat(x[:1], pad, 0)])
            y = None if y is None else np.concatenate([y, np.repeat(y[:1], pad)])
        z = encode(vae, variables, jnp.asarray(x), None if y is None else jnp.asarray(y, jnp.int32))
        out.append(z[: len(z) - pad])
    return jnp.concatenate(out) if out else jnp.zeros((0, vae.latent_dim), jnp.float32)


def sample_latents(key: jax.Array, num: int, latent_dim: int) -> jax.Array:
    """float32[num, latent_dim] from N(0, I) truncated to [−2, 2]^d, the box the attacks search."""
    return jax.random.truncated_normal(key, -LATENT_BOX, LATENT_BOX, (num, latent_dim), jnp.float32)
