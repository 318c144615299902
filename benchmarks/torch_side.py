"""The PyTorch side of the benchmarks, written as a PyTorch user would write it.

The paper's networks as torch modules (NCHW) with the JAX weights copied in — the CNN classifier
and one class VAE-GAN's encoder, decoder and discriminator —, FONTS rendering with
``F.affine_grid`` + ``F.grid_sample`` (align_corners=True), and the PGD loop: ``torch.optim.Adam``
on a leaf tensor, clamp projections onto the ε-ball and the box.  JAX kernels are HWIO and
flattening is NHWC; the copies transpose kernels and permute the rows / columns of the linear
layers next to a flatten, so the torch forward passes are the plain NCHW ones.

torch is the optional ``bench`` extra: :func:`load` returns None (and says so) without it.
"""

from __future__ import annotations

import os

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # JAX figures only
    torch = None

Module = nn.Module if torch is not None else object


def load(no_torch: bool = False):
    """torch with one thread per core, or None (printing why) with ``no_torch``, without torch,
    or when JAX runs on an accelerator (PyTorch is compared on the CPU only)."""
    if no_torch:
        print("PyTorch side skipped (--no-torch): JAX figures only")
        return None
    if torch is None:
        print("torch not installed (pip install -e '.[bench]'): JAX figures only")
        return None
    import jax

    if jax.default_backend() != "cpu":
        print(f"JAX runs on {jax.default_backend()}, PyTorch on the CPU: JAX figures only")
        return None
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    busy = os.getloadavg()[0]
    if busy > 0.5:  # seen here: 10-50x slower PyTorch steps while a test suite held both cores
        print(f"warning: load average {busy:.1f} on {cores} cores before the run; PyTorch's OpenMP "
              "threads slow down far more than JAX's when other processes share the cores, so the "
              "ratios of this run are inflated: measure on an idle machine")
    return torch


# Where the benchmarks' FONTS comes from: the full build, the tests' small one, or random glyphs
# of FONTS' shapes (a machine without the font packages, e.g. a GPU image; speed does not depend
# on what the glyphs look like)
FONTS_SOURCES = {"paper": {}, "small": dict(num_fonts=100, repetitions=12, test_repetitions=2), "synthetic": None}


def add_arguments(parser) -> None:
    """The options every PyTorch-side benchmark shares: where FONTS comes from, no PyTorch."""
    parser.add_argument("--fonts", default="paper", choices=sorted(FONTS_SOURCES),
                        help="small: the tests' build; synthetic: random glyphs (no fonts needed)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch side")


def fonts(source: str, split: str, n: int):
    """(``data.Dataset`` of ``n`` float32 images of ``split`` with θ and font ids, prototypes
    float32[F, 10, 28, 28, 1]) from ``source`` (a key of :data:`FONTS_SOURCES`)."""
    import jax

    from manifold_robustness import data, transforms
    from manifold_robustness.manifolds import fonts as true_manifold

    if FONTS_SOURCES[source] is not None:
        cfg = data.FontsConfig(**FONTS_SOURCES[source])
        return data.load("fonts", split, limit=n, config=cfg), np.asarray(data.fonts_prototypes(cfg))
    rng = np.random.default_rng(0 if split == "train" else 1)
    prototypes = rng.uniform(size=(100, 10, 28, 28, 1)).astype(np.float32)
    labels, font_ids = (np.arange(n) % 10).astype(np.int32), rng.integers(0, 100, n).astype(np.int32)
    theta = np.asarray(transforms.sample_theta(jax.random.key(n), n, transforms.FONTS_RANGES["hard"]))
    images = np.asarray(true_manifold.render(prototypes, font_ids, labels, theta), np.float32)
    return data.Dataset("fonts", split, images, labels, 10, font_ids=font_ids, theta=theta), prototypes


def tensor(a) -> "torch.Tensor":
    return torch.from_numpy(np.array(a, np.float32))


def nchw(images) -> "torch.Tensor":
    """NHWC numpy / JAX images → a float32 NCHW tensor."""
    return tensor(np.asarray(images).transpose(0, 3, 1, 2))


def take(tree, k: int):
    """Model ``k`` of a stacked (leading model axis) pytree of JAX variables."""
    import jax

    return jax.tree.map(lambda a: np.asarray(a)[k], tree)


# --- layers from JAX variables -----------------------------------------------------------------


def conv(q, stride: int = 2) -> "nn.Conv2d":
    """A k×k conv with padding (k − 2)/2 (the paper's 4×4, stride 2, padding 1)."""
    k, _, cin, cout = np.shape(q["kernel"])
    m = nn.Conv2d(cin, cout, k, stride, (k - 2) // 2)
    m.weight.data = tensor(np.asarray(q["kernel"]).transpose(3, 2, 0, 1))
    m.bias.data = tensor(q["bias"])
    return m


def conv_transpose(q, output_padding: int) -> "nn.ConvTranspose2d":
    """lax.conv_transpose's kernel is not flipped; torch's transposed conv flips it."""
    k, _, cin, cout = np.shape(q["kernel"])
    m = nn.ConvTranspose2d(cin, cout, k, 2, (k - 2) // 2, output_padding)
    m.weight.data = tensor(np.flip(np.asarray(q["kernel"]), (0, 1)).transpose(2, 3, 0, 1))
    m.bias.data = tensor(q["bias"])
    return m


def batch_norm(q, stats) -> "nn.BatchNorm2d":
    m = nn.BatchNorm2d(np.shape(q["scale"])[0], eps=1e-5, momentum=0.1)
    m.weight.data, m.bias.data = tensor(q["scale"]), tensor(q["bias"])
    m.running_mean.data, m.running_var.data = tensor(stats["mean"]), tensor(stats["var"])
    return m


def linear(q, in_chw=None, out_chw=None) -> "nn.Linear":
    """A dense layer; ``in_chw`` / ``out_chw``: the (C, H, W) map flattened before / reshaped
    after it, whose NHWC order JAX used and NCHW order torch uses."""
    w, b = np.asarray(q["kernel"]), np.asarray(q["bias"])
    if in_chw is not None:
        c, h, wd = in_chw
        w = w.reshape(h, wd, c, -1).transpose(2, 0, 1, 3).reshape(w.shape)
    if out_chw is not None:
        c, h, wd = out_chw
        w = w.reshape(-1, h, wd, c).transpose(0, 3, 1, 2).reshape(w.shape)
        b = b.reshape(h, wd, c).transpose(2, 0, 1).reshape(b.shape)
    m = nn.Linear(*w.shape)
    m.weight.data, m.bias.data = tensor(w.T), tensor(b)
    return m


def conv_stack(p, s) -> "nn.Sequential":
    """[conv → BN → ReLU] per layer of the JAX ``convs`` / ``norms``."""
    layers = []
    for i in range(len(p["convs"])):
        layers += [conv(p["convs"][i]), batch_norm(p["norms"][i], s["norms"][i]), nn.ReLU()]
    return nn.Sequential(*layers)


def _chw(p, height: int) -> tuple[int, int, int]:
    """(C, H, W) of the last map of a conv stack on ``height``×``height`` inputs."""
    for _ in p["convs"]:
        height = (height - 2) // 2 + 1
    return np.shape(p["convs"][len(p["convs"]) - 1]["kernel"])[-1], height, height


# --- the networks ------------------------------------------------------------------------------


def cnn(variables, size: int = 28) -> "nn.Sequential":
    """The paper's CNN (eval mode) with the JAX classifier's variables."""
    p, s = variables["params"], variables["batch_stats"]
    fc1, fc2 = linear(p["fc1"], in_chw=_chw(p, size)), linear(p["fc2"])
    return nn.Sequential(*conv_stack(p, s), nn.Flatten(), fc1, fc2).eval()


class Encoder(Module):
    """x → (μ, log σ²) of one class model (``net``: its ``{"params", "batch_stats"}``)."""

    def __init__(self, net, size: int = 28):
        super().__init__()
        p, s = net["params"], net["batch_stats"]
        self.stack = conv_stack(p["stack"], s["stack"])
        chw = _chw(p["stack"], size)
        self.mean, self.logvar = linear(p["mean"], in_chw=chw), linear(p["logvar"], in_chw=chw)

    def forward(self, x):
        h = self.stack(x).flatten(1)
        return self.mean(h), self.logvar(h)


class Decoder(Module):
    """z → x̂ in (0, 1): linear to the last encoder map, transposed convs back to the image."""

    def __init__(self, net, size: int = 28):
        super().__init__()
        p, s = net["params"], net["batch_stats"]
        n = len(p["deconvs"])
        sizes = [size]
        for _ in range(n):
            sizes.insert(0, (sizes[0] - 2) // 2 + 1)  # 28 → 14 → 7 → 3 read backwards
        self.start = (np.shape(p["deconvs"][0]["kernel"])[2], sizes[0], sizes[0])
        self.linear = linear(p["linear"], out_chw=self.start)
        pads = [b - 2 * a for a, b in zip(sizes[:-1], sizes[1:])]
        self.deconvs = nn.ModuleList(conv_transpose(p["deconvs"][i], pads[i]) for i in range(n))
        self.norms = nn.ModuleList(batch_norm(p["norms"][i], s["norms"][i]) for i in range(n - 1))

    def forward(self, z):
        x = self.linear(z).view(-1, *self.start)
        for deconv, norm in zip(self.deconvs[:-1], self.norms):
            x = F.relu(norm(deconv(x)))
        return torch.sigmoid(self.deconvs[-1](x))


class Discriminator(Module):
    """x → one logit (real vs reconstructed)."""

    def __init__(self, net, size: int = 28):
        super().__init__()
        p, s = net["params"], net["batch_stats"]
        self.stack = conv_stack(p["stack"], s["stack"])
        self.fc1, self.fc2 = linear(p["fc1"], in_chw=_chw(p["stack"], size)), linear(p["fc2"])

    def forward(self, x):
        return self.fc2(self.fc1(self.stack(x).flatten(1)))[:, 0]


def vaegan_nets(variables, k: int, size: int = 28):
    """(encoder, decoder, discriminator) of class model ``k`` of stacked JAX VAE-GAN variables."""
    net = lambda name: take({"params": variables["params"][name],  # noqa: E731
                             "batch_stats": variables["batch_stats"][name]}, k)
    return tuple(cls(net(name), size) for cls, name in
                 ((Encoder, "encoder"), (Decoder, "decoder"), (Discriminator, "discriminator")))


# --- FONTS rendering and the attack loop ---------------------------------------------------------


def affine_matrix(theta):
    """θ = (tx, ty, shear_x, shear_y, scale, rotation) [B, 6] → the paper's [B, 2, 3] matrix."""
    tx, ty, shx, shy, s, r = theta.unbind(1)
    cos, sin = torch.cos(r), torch.sin(r)
    row0 = torch.stack([s * cos - s * shx * sin, -s * sin + s * shx * cos, tx], 1)
    row1 = torch.stack([s * shy * cos + s * sin, -s * shy * sin + s * cos, ty], 1)
    return torch.stack([row0, row1], 1)


def render(glyphs, theta):
    """Warp NCHW glyphs by θ (bilinear, zero padding), clamped to [0, 1]."""
    grid = F.affine_grid(affine_matrix(theta), list(glyphs.shape), align_corners=True)
    return F.grid_sample(glyphs, grid, "bilinear", "zeros", align_corners=True).clamp(0, 1)


def attack(model, decode, v0, y, low, high, eps=0.3, iterations=40, mode="eval", lr=0.005):
    """L∞ PGD with Adam on v (images, θ or latent codes), the classifier seeing ``decode(v)``.

    Starts at v0 + a random direction of L∞ norm u·ε (u ~ U(0, 1)), clamped into the box
    [low, high]; after each step v is clamped into the ε-ball around v0 and the box.  ``mode``
    "eval": a row keeps its first misclassified v and stops moving; "train": every row runs every
    iteration and keeps its highest-loss v.  Restarts are rows (repeat v0, y).  Only v gets
    gradients (``backward(inputs=[v])``).  Returns (v, misclassified at v).
    """
    n = len(y)
    d = torch.randn_like(v0)
    d = d / d.flatten(1).abs().amax(1).view(-1, *[1] * (v0.dim() - 1))
    d = d * torch.rand(n, *[1] * (v0.dim() - 1)) * eps
    lo, hi = torch.maximum(v0 - eps, low), torch.minimum(v0 + eps, high)
    v = torch.minimum(torch.maximum(v0 + d, low), high).requires_grad_(True)
    opt = torch.optim.Adam([v], lr=lr)
    keep, best = v.detach().clone(), torch.full((n,), -float("inf"))
    done = torch.zeros(n, dtype=torch.bool)
    for i in range(iterations + 1):
        logits = model(decode(v))
        loss = F.cross_entropy(logits, y, reduction="none")
        with torch.no_grad():
            if mode == "train":
                better = loss > best
                keep[better], best = v[better], torch.maximum(best, loss)
            else:
                newly = (logits.argmax(1) != y) & ~done
                keep[newly], done = v[newly], done | newly
        if i == iterations:
            break
        opt.zero_grad()
        (-loss.sum()).backward(inputs=[v])
        opt.step()
        with torch.no_grad():  # project; in eval mode the done rows go back to their success
            v.copy_(torch.minimum(torch.maximum(v, lo), hi))
            if mode != "train":
                v[done] = keep[done]
    out = keep if mode == "train" else v.detach()
    with torch.no_grad():
        return out, model(decode(out)).argmax(1) != y
