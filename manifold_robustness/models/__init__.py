"""Classifiers: a registry by name and the pure boundary the rest of the library uses.

Networks are Flax NNX modules; at the boundary :func:`create` splits one into a static
:class:`Classifier` (the graph definition plus shapes) and ``variables`` = ``{"params": State,
"batch_stats": State}``, a plain pytree.  Everything else in the library works on pure functions:

>>> clf, variables = models.create("cnn", input_shape=(28, 28, 1), num_classes=10, key=jax.random.key(0))
>>> logits = clf.logits_fn(variables)(images)                    # eval mode (running BN statistics)
>>> logits, new_stats = clf.apply(variables, images, train=True)  # training mode (batch statistics)

Attacks, metrics and distances take any ``logits_fn(x) -> logits`` callable, not only ours.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from manifold_robustness.models.classifiers import CNN, MLP, VGG, ResNet13

__all__ = ["ARCHITECTURES", "Classifier", "apply_graph", "create", "structure", "init_variables", "count_params",
           "check_images"]

ARCHITECTURES: dict[str, type[nnx.Module]] = {"cnn": CNN, "mlp": MLP, "resnet13": ResNet13, "vgg": VGG}

Variables = dict[str, Any]  # {"params": nnx.State, "batch_stats": nnx.State}


def check_images(images, input_shape: Sequence[int]) -> None:
    """Boundary check: float32[B, *input_shape] with values in [0, 1], else a ValueError saying so."""
    shape = tuple(np.shape(images))
    if len(shape) != 1 + len(input_shape) or shape[1:] != tuple(input_shape):
        raise ValueError(f"images must have shape [batch, {', '.join(map(str, input_shape))}] (NHWC); got {shape}")
    dtype = getattr(images, "dtype", None)
    if dtype != jnp.float32:
        raise ValueError(f"images must be float32 in [0, 1]; got dtype {dtype} (uint8 images: divide by 255)")
    if not isinstance(images, jax.core.Tracer):
        arr = np.asarray(images)
        check_range(arr, "images")


def check_range(arr: np.ndarray, what: str) -> None:
    """A ValueError when concrete float images contain NaN or leave [0, 1], saying which."""
    if not arr.size:
        return
    nan = int(np.isnan(arr).sum())
    if nan:
        raise ValueError(f"{what} contains NaN ({nan} of {arr.size} values); images must be float32 in [0, 1]")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise ValueError(f"{what} must lie in [0, 1]; got range [{arr.min()}, {arr.max()}]")


def apply_graph(graphdef: Any, variables: Variables, *args, train: bool = False) -> tuple[Any, Any]:
    """Call the NNX module ``graphdef`` with ``variables`` on ``args``, purely → (output, batch_stats).

    ``train=True`` normalises with batch statistics and returns the updated running statistics;
    ``train=False`` uses the running statistics and returns them unchanged.
    """
    # Rebuild the State pytrees so the module gets fresh Variable objects at the current trace
    # level (merge reuses the objects it is given, and batch norm mutates them).
    params, stats = jax.tree.map(lambda x: x, (variables["params"], variables["batch_stats"]))
    module = nnx.merge(graphdef, params, stats)
    if train:
        module.train()
    else:
        module.eval()
    out = module(*args)
    _, _, stats = nnx.split(module, nnx.Param, nnx.BatchStat)
    return out, stats


@dataclasses.dataclass(frozen=True, eq=False)
class Classifier:
    """A classifier's static half: its name, input shape, number of classes and NNX graph."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    graphdef: Any
    options: tuple = ()  # extra constructor options, e.g. (("conv", "xla"),)

    def apply(self, variables: Variables, x: jax.Array, train: bool = False) -> tuple[jax.Array, Any]:
        """Pure forward pass. x: float32[B, *input_shape] → (logits float32[B, classes], batch_stats).

        ``train=True`` normalises with batch statistics and returns the updated running statistics;
        ``train=False`` uses the running statistics and returns them unchanged.
        """
        shape = tuple(np.shape(x))
        if len(shape) != 1 + len(self.input_shape) or shape[1:] != tuple(self.input_shape):
            raise ValueError(f"this {self.name} takes images float32[batch, {', '.join(map(str, self.input_shape))}] "
                             f"(NHWC); got shape {list(shape)}")
        return apply_graph(self.graphdef, variables, x, train=train)

    def logits_fn(self, variables: Variables) -> Callable[[jax.Array], jax.Array]:
        """x → logits in eval mode: what attacks and metrics call."""
        return lambda x: self.apply(variables, x, train=False)[0]


def _build(name: str, input_shape, num_classes: int, key: jax.Array, **kwargs) -> nnx.Module:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"input_shape must be (height, width, channels); got {input_shape}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2; got {num_classes}")
    return ARCHITECTURES[name](tuple(input_shape), num_classes, rngs=nnx.Rngs(params=key), **kwargs)


def create(name: str, input_shape: Sequence[int], num_classes: int, key: jax.Array, **kwargs) -> tuple[Classifier, Variables]:
    """Build architecture ``name`` ("cnn", "mlp", "resnet13", "vgg") → (classifier, variables).

    ``kwargs`` go to the module, e.g. ``conv="xla"`` to force XLA's convolution (see
    :mod:`.conv`; the default "auto" picks the faster one for the backend)."""
    module = _build(name, input_shape, num_classes, key, **kwargs)
    graphdef, params, stats = nnx.split(module, nnx.Param, nnx.BatchStat)
    options = tuple(sorted(kwargs.items()))
    return Classifier(name, tuple(input_shape), num_classes, graphdef, options), {"params": params, "batch_stats": stats}


def structure(name: str, input_shape: Sequence[int], num_classes: int, **kwargs) -> Classifier:
    """The classifier of :func:`create` without drawing any weights (``nnx.eval_shape``): for code
    that loads its variables from a store (the ``attack`` command, reports), where drawing the
    initial weights cost ~2 s of start-up."""
    module = nnx.eval_shape(lambda: _build(name, input_shape, num_classes, jax.random.key(0), **kwargs))
    graphdef, _, _ = nnx.split(module, nnx.Param, nnx.BatchStat)
    return Classifier(name, tuple(input_shape), num_classes, graphdef, tuple(sorted(kwargs.items())))


def init_variables(clf: Classifier, key: jax.Array) -> Variables:
    """Fresh variables for an existing classifier (same graph), e.g. one per seed."""
    _, variables = create(clf.name, clf.input_shape, clf.num_classes, key, **dict(clf.options))
    return variables


def count_params(variables: Variables) -> int:
    """Number of trainable parameters (batch-norm running statistics excluded)."""
    return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(variables["params"])))
