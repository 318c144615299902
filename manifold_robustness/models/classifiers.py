"""The paper's classifiers as Flax NNX modules (reference digest: paper §6.2, §6.5; code §4.1).

All take NHWC float32 images in [0, 1] and return logits.  Batch norm uses PyTorch's defaults
(momentum 0.1 → Flax ``momentum=0.9``, eps 1e-5).  Weights use the original code's initialisation:
``kaiming_normal_(w, √2)`` passes √2 as the leaky-ReLU slope, not as a gain, so the standard
deviation is √(2/3)/√fan_in; that is ``variance_scaling(2/3, "fan_in", "normal")``, drawn by
:func:`.initializers.scaled_normal` (one compiled random program per size, not per shape).

Every convolutional model takes ``conv="auto" | "xla" | "patches"``: how ``nnx.Conv`` computes
(see :mod:`.conv` for the measurements; "auto" is patches + matmul on CPU, XLA's convolution on
accelerators).  The choice changes speed only, never the function.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from manifold_robustness.models import conv as conv_impl
from manifold_robustness.models import initializers

KERNEL_INIT = initializers.scaled_normal(2.0 / 3.0)  # variance_scaling(2/3, "fan_in", "normal")
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def _bn(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(features, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, rngs=rngs)


def _conv(cin: int, cout: int, kernel: int, stride: int, padding: int, rngs: nnx.Rngs, bias: bool = True, conv: str = "auto") -> nnx.Conv:
    return nnx.Conv(
        cin, cout, (kernel, kernel), strides=stride, padding=[(padding, padding)] * 2, use_bias=bias,
        kernel_init=KERNEL_INIT, conv_general_dilated=conv_impl.resolve(conv), rngs=rngs,
    )


def _linear(cin: int, cout: int, rngs: nnx.Rngs) -> nnx.Linear:
    return nnx.Linear(cin, cout, kernel_init=KERNEL_INIT, rngs=rngs)


def conv_stack_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """Spatial sizes after each 4×4/stride-2/pad-1 block, adding blocks while both halves are >= 2
    (28×28 → 14, 7, 3: three blocks; CelebA 56×48 → four)."""
    sizes = []
    while height // 2 >= 2 and width // 2 >= 2:
        height, width = (height - 2) // 2 + 1, (width - 2) // 2 + 1
        sizes.append((height, width))
    return sizes


class CNN(nnx.Module):
    """The paper's CNN: [conv 4×4 s2 p1 → BN → ReLU] × k with 16, 32, 64 (, 128) channels, then
    Linear(10·classes) and Linear(classes) with no nonlinearity between the two."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, channels: int = 16, conv: str = "auto", rngs: nnx.Rngs):
        h, w, c = input_shape
        sizes = conv_stack_sizes(h, w)
        widths = [channels * 2**i for i in range(len(sizes))]
        self.convs = nnx.List([_conv(ci, co, 4, 2, 1, rngs, conv=conv) for ci, co in zip([c, *widths[:-1]], widths)])
        self.norms = nnx.List([_bn(co, rngs) for co in widths])
        flat = sizes[-1][0] * sizes[-1][1] * widths[-1]
        self.fc1 = _linear(flat, 10 * num_classes, rngs)
        self.fc2 = _linear(10 * num_classes, num_classes, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv, norm in zip(self.convs, self.norms):
            x = nnx.relu(norm(conv(x)))
        return self.fc2(self.fc1(x.reshape(x.shape[0], -1)))


class MLP(nnx.Module):
    """4 hidden layers of 128 units, each Linear → ReLU → BN (the original's order)."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, hidden: Sequence[int] = (128,) * 4, conv: str = "auto", rngs: nnx.Rngs):
        del conv  # no convolutions; accepted so every architecture takes the same options
        dims = [math.prod(input_shape), *hidden]
        self.layers = nnx.List([_linear(a, b, rngs) for a, b in zip(dims[:-1], dims[1:])])
        self.norms = nnx.List([_bn(b, rngs) for b in hidden])
        self.head = _linear(dims[-1], num_classes, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer, norm in zip(self.layers, self.norms):
            x = norm(nnx.relu(layer(x)))
        return self.head(x)


class BasicBlock(nnx.Module):
    def __init__(self, cin: int, cout: int, stride: int, rngs: nnx.Rngs, conv: str = "auto"):
        self.conv1 = _conv(cin, cout, 3, stride, 1, rngs, bias=False, conv=conv)
        self.bn1 = _bn(cout, rngs)
        self.conv2 = _conv(cout, cout, 3, 1, 1, rngs, bias=False, conv=conv)
        self.bn2 = _bn(cout, rngs)
        project = stride != 1 or cin != cout  # 1×1 conv + BN on the skip path when the shape changes
        self.shortcut = nnx.data(_conv(cin, cout, 1, stride, 0, rngs, bias=False, conv=conv) if project else None)
        self.shortcut_bn = nnx.data(_bn(cout, rngs) if project else None)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        skip = x if self.shortcut is None else self.shortcut_bn(self.shortcut(x))
        return nnx.relu(y + skip)


class ResNet13(nnx.Module):
    """3×3 stem (64) + 3 stages of 2 basic blocks (64, 128/2, 256/2), global average pool, linear."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, widths=(64, 128, 256), blocks=2, conv: str = "auto", rngs: nnx.Rngs):
        c = input_shape[-1]
        self.stem = _conv(c, widths[0], 3, 1, 1, rngs, bias=False, conv=conv)
        self.stem_bn = _bn(widths[0], rngs)
        layers, cin = [], widths[0]
        for i, width in enumerate(widths):
            for j in range(blocks):
                layers.append(BasicBlock(cin, width, 2 if (i > 0 and j == 0) else 1, rngs, conv=conv))
                cin = width
        self.blocks = nnx.List(layers)
        self.head = _linear(cin, num_classes, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nnx.relu(self.stem_bn(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(axis=(1, 2)))


class VGG(nnx.Module):
    """Conv 3×3 → BN → ReLU with 64, 128, 128, 256, 256 channels, a 2×2 max-pool after each change of
    width (after the 2nd and 4th conv), then FC 1024 → ReLU → FC 1024 → ReLU → FC; no dropout."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, widths=(64, 128, 128, 256, 256), hidden=1024, conv: str = "auto", rngs: nnx.Rngs):
        h, w, c = input_shape
        chans = [c, *widths]
        self.convs = nnx.List([_conv(a, b, 3, 1, 1, rngs, conv=conv) for a, b in zip(chans[:-1], chans[1:])])
        self.norms = nnx.List([_bn(b, rngs) for b in widths])
        # a max-pool follows each conv that changed the width (convs 2 and 4: 28 → 14 → 7)
        self.pool_after = tuple(i for i in range(1, len(widths)) if widths[i] != widths[i - 1])
        for _ in self.pool_after:
            h, w = h // 2, w // 2
        self.fc1 = _linear(h * w * widths[-1], hidden, rngs)
        self.fc2 = _linear(hidden, hidden, rngs)
        self.head = _linear(hidden, num_classes, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = nnx.relu(norm(conv(x)))
            if i in self.pool_after:
                x = nnx.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        return self.head(nnx.relu(self.fc2(nnx.relu(self.fc1(x)))))
