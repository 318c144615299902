"""The VAE-GAN's three networks as Flax NNX modules (reference digest: paper §3.2, code §4.2).

All take or return NHWC float32 images in [0, 1].  Each network is a stack of stride-2
(de)convolutions, each followed by batch norm and ReLU, with 64, 128, 256 channels (one more layer,
512, on CelebA): the depth follows the input size exactly like the classifier's
(:func:`~manifold_robustness.models.classifiers.conv_stack_sizes`: 28×28 → 14, 7, 3; 56×48 →
28×24, 14×12, 7×6, 3×3).

- :class:`Encoder` x → (μ, log σ²): the conv stack, flatten, two linear heads.
- :class:`Decoder` z → x̂: linear to the encoder's last map (3×3×256 on 28×28), then transposed
  convs that retrace the encoder's sizes in reverse (3 → 7 → 14 → 28), the last one to the image
  channels with a sigmoid.  A stride-2 transposed conv with kernel k and padding (k − 2)/2 maps n
  to 2n (+1 with an output padding); each layer takes the output padding, per axis, that lands on
  the size the encoder had at that depth.  This is how CelebA reaches 56×48 (3×3 → 7×6 → 14×12 →
  28×24 → 56×48) without special cases.
- :class:`Discriminator` x → logit: the conv stack, then Linear(10) and Linear(1) with nothing in
  between — the original's discriminator is its classifier with one output.

Kernels are 4×4 as in the paper; the original code used 6×6 (padding 2) in the decoder and the
discriminator, available through the ``kernel`` arguments (any even size keeps the shapes).
Initialisation follows the original: N(0, 0.001²) for the encoder's convs and all of the decoder,
and the classifier's ``kaiming_normal_(w, √2)`` quirk (std √(2/3)/√fan_in) for the encoder heads
and the discriminator; biases 0; batch norm with PyTorch's momentum 0.1 and eps 1e-5.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from manifold_robustness.models import conv as conv_impl
from manifold_robustness.models import initializers
from manifold_robustness.models.classifiers import BN_EPSILON, BN_MOMENTUM, KERNEL_INIT, conv_stack_sizes

SMALL_INIT = initializers.normal(0.001)  # the original's N(0, 0.001) (0.001 is the std)


def check_kernel(kernel: int) -> int:
    if kernel < 2 or kernel % 2:
        raise ValueError(f"kernel sizes must be even and >= 2 (padding (k - 2)/2 halves the size); got {kernel}")
    return kernel


def widths(depth: int, channels: int) -> list[int]:
    """Channels per layer: channels·2^i (64, 128, 256[, 512])."""
    return [channels * 2**i for i in range(depth)]


def _bn(features: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
    return nnx.BatchNorm(features, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, rngs=rngs)


class ConvStack(nnx.Module):
    """[conv k×k stride 2 → BN → ReLU] × depth; x: float32[B, H, W, C] → float32[B, h, w, c_last]."""

    def __init__(self, input_shape: Sequence[int], *, channels: int, kernel: int, kernel_init, conv: str, rngs: nnx.Rngs):
        h, w, c = input_shape
        pad = (check_kernel(kernel) - 2) // 2
        chans = widths(len(conv_stack_sizes(h, w)), channels)
        self.convs = nnx.List([
            nnx.Conv(ci, co, (kernel, kernel), strides=2, padding=[(pad, pad)] * 2, kernel_init=kernel_init,
                     conv_general_dilated=conv_impl.resolve(conv), rngs=rngs)
            for ci, co in zip([c, *chans[:-1]], chans)
        ])
        self.norms = nnx.List([_bn(co, rngs) for co in chans])

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv, norm in zip(self.convs, self.norms):
            x = nnx.relu(norm(conv(x)))
        return x


def flat_size(input_shape: Sequence[int], channels: int) -> int:
    sizes = conv_stack_sizes(*input_shape[:2])
    return sizes[-1][0] * sizes[-1][1] * widths(len(sizes), channels)[-1]


class Encoder(nnx.Module):
    """x: float32[B, H, W, C] → (μ, log σ²), each float32[B, latent_dim]."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int, *, channels: int = 64, kernel: int = 4, conv: str = "auto", rngs: nnx.Rngs):
        self.stack = ConvStack(input_shape, channels=channels, kernel=kernel, kernel_init=SMALL_INIT, conv=conv, rngs=rngs)
        flat = flat_size(input_shape, channels)
        self.mean = nnx.Linear(flat, latent_dim, kernel_init=KERNEL_INIT, rngs=rngs)
        self.logvar = nnx.Linear(flat, latent_dim, kernel_init=KERNEL_INIT, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = self.stack(x)
        h = h.reshape(h.shape[0], -1)
        return self.mean(h), self.logvar(h)


class Discriminator(nnx.Module):
    """x: float32[B, H, W, C] → logit float32[B] (real vs reconstructed)."""

    def __init__(self, input_shape: Sequence[int], *, channels: int = 64, kernel: int = 4, conv: str = "auto", rngs: nnx.Rngs):
        self.stack = ConvStack(input_shape, channels=channels, kernel=kernel, kernel_init=KERNEL_INIT, conv=conv, rngs=rngs)
        self.fc1 = nnx.Linear(flat_size(input_shape, channels), 10, kernel_init=KERNEL_INIT, rngs=rngs)
        self.fc2 = nnx.Linear(10, 1, kernel_init=KERNEL_INIT, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.stack(x)
        return self.fc2(self.fc1(h.reshape(h.shape[0], -1)))[:, 0]


class ConvTranspose(nnx.Module):
    """Stride-2 transposed conv in PyTorch's terms (kernel k, padding p, output padding per axis):
    float32[B, h, w, Cin] → float32[B, 2h − 2 − 2p + k + op_h, 2w − 2 − 2p + k + op_w, Cout].

    ``conv`` picks the computation (:func:`~manifold_robustness.models.conv.resolve_transpose`):
    XLA's ``conv_transpose`` or the phase-wise patches form, the same function.
    """

    def __init__(self, cin: int, cout: int, kernel: int, padding: int, output_padding: tuple[int, int], *,
                 conv: str = "auto", kernel_init=SMALL_INIT, rngs: nnx.Rngs):
        self.kernel = nnx.Param(kernel_init(rngs.params(), (kernel, kernel, cin, cout), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((cout,), jnp.float32))
        lo = kernel - 1 - padding  # PyTorch's padding p removes p rows from the dilated conv's k − 1
        self.padding = tuple((lo, lo + op) for op in output_padding)
        self.conv = conv

    def __call__(self, x: jax.Array) -> jax.Array:
        y = conv_impl.resolve_transpose(self.conv)(x, self.kernel[...], (2, 2), self.padding)
        return y + self.bias[...]


def decoder_sizes(input_shape: Sequence[int]) -> list[tuple[int, int]]:
    """Spatial sizes along the decoder: the encoder's, reversed, ending at the image size
    (28×28: [(3, 3), (7, 7), (14, 14), (28, 28)])."""
    h, w = input_shape[:2]
    return [*reversed(conv_stack_sizes(h, w)), (h, w)]


class Decoder(nnx.Module):
    """z: float32[B, latent_dim] → x̂: float32[B, H, W, C] in (0, 1)."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int, *, channels: int = 64, kernel: int = 4, conv: str = "auto", rngs: nnx.Rngs):
        sizes = decoder_sizes(input_shape)
        pad = (check_kernel(kernel) - 2) // 2
        chans = [*reversed(widths(len(sizes) - 1, channels)), input_shape[2]]  # 256, 128, 64, C
        self.start = (*sizes[0], chans[0])
        self.linear = nnx.Linear(latent_dim, sizes[0][0] * sizes[0][1] * chans[0], kernel_init=SMALL_INIT, rngs=rngs)
        layers = []
        for (h, w), (th, tw), ci, co in zip(sizes[:-1], sizes[1:], chans[:-1], chans[1:]):
            output_padding = (th - 2 * h, tw - 2 * w)
            assert all(op in (0, 1) for op in output_padding), (sizes, output_padding)
            layers.append(ConvTranspose(ci, co, kernel, pad, output_padding, conv=conv, rngs=rngs))
        self.deconvs = nnx.List(layers)
        self.norms = nnx.List([_bn(co, rngs) for co in chans[1:-1]])

    def __call__(self, z: jax.Array) -> jax.Array:
        x = self.linear(z).reshape(z.shape[0], *self.start)
        for deconv, norm in zip(self.deconvs[:-1], self.norms):
            x = nnx.relu(norm(deconv(x)))
        return nnx.sigmoid(self.deconvs[-1](x))
