"""One adversarial-training step, JAX vs an idiomatic PyTorch implementation, same initial weights.

A step of the paper's recipe on FONTS, batch 100, paper CNN: 50 clean + 50 adversarial examples
made by a 40-iteration inner attack in train mode (Adam lr 0.005, one restart, the model in eval
mode, every row runs all iterations and keeps its highest-loss iterate), then the cross-entropy
of the 100 rows in train mode and Adam (β 0.5, 0.9), lr 0.01 · 0.95^(1 + step / steps per epoch),
coupled weight decay 1e-4 (PyTorch: ``torch.optim.Adam(weight_decay=1e-4)`` with a ``LambdaLR``).
Methods: ``regular_at`` (L∞ ε 0.3 on the image) and ``on_true_manifold_at`` (θ, η 0.3 in the Hard
ranges, rendered through the affine transformer; PyTorch ``F.affine_grid`` + ``F.grid_sample``).

JAX runs the library's compiled training epoch (``training.loop.compile_epoch`` with the method's
batch builder) on an epoch of one batch, so each call is one step.  Prints ms per step and
images/s (100 per step) on both sides, compile time apart, and the ratio.  Before timing, both
sides take one plain training step from the same weights on the same 100 images; the updated
parameters (but the conv biases, which feed batch norm and get rounding noise as gradient) and
batch-norm statistics are checked to agree (atol 1e-4), and so are the logits.

Target (issue 14, item 2): >= 2x PyTorch eager's steps/s for each method.
Measured (2-core AMD EPYC (AVX-512), jax 0.10.2, torch 2.13.0 CPU, 2026-12-03; 10 steps, the full FONTS): regular AT 133 ms
(752 img/s) against PyTorch 311 ms: 2.34x; on-true AT 150 ms against 300 ms: 1.99x.

    .venv/bin/python benchmarks/at_step_throughput.py [--steps 20] [--methods regular_at,on_true_manifold_at]
        [--fonts paper|small|synthetic] [--no-torch]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import torch_side as ts

BATCH, ETA = 100, 0.3


def jax_steps(clf, variables, method, data, arrays, steps):
    """(ms per step, compile s, the state after the timed steps) of ``steps`` one-step epochs."""
    from manifold_robustness import training, transforms
    from manifold_robustness.training import loop

    cfg = training.TrainConfig()
    ctx = training.MethodContext(clf, ranges=transforms.FONTS_RANGES["hard"], arrays=arrays)
    epoch = loop.compile_epoch(clf, loop.make_optimizer(cfg, 1), training.make_builder(method, ctx), BATCH)
    opt = loop.make_optimizer(cfg, 1)
    state = jax.tree.map(lambda x: jnp.asarray(x)[None], loop.init_state(variables, opt))
    t0 = time.perf_counter()
    state, m = epoch(state, data, jax.random.key(0)[None], arrays)
    jax.block_until_ready(m)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in range(steps):
        state, m = epoch(state, data, jax.random.key(s + 1)[None], arrays)
    jax.block_until_ready(m)
    step_s = (time.perf_counter() - t0) / max(steps, 1)
    return step_s * 1e3, first - step_s, state


class TorchTrainer:
    """The PyTorch side: the CNN with the JAX weights, its Adam and learning-rate schedule."""

    def __init__(self, variables, steps_per_epoch: int = 1):
        torch = ts.torch
        self.model = ts.cnn(variables).train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=0.01, betas=(0.5, 0.9), weight_decay=1e-4)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: 0.95 ** (1 + s / steps_per_epoch))

    def step(self, x, y):
        self.model.train()
        loss = ts.F.cross_entropy(self.model(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()

    def adversarial_step(self, x, y, decode, v0, low, high):
        """50 clean rows + the other 50 from the train-mode inner attack on ``decode(v)``."""
        torch = ts.torch
        half = len(y) // 2
        self.model.eval()
        v, _ = ts.attack(self.model, decode, v0, y[half:], low, high, eps=ETA, iterations=40, mode="train")
        with torch.no_grad():
            x_adv = decode(v)
        self.step(torch.cat([x[:half], x_adv]), y)


def torch_inputs(method, batch, prototypes):
    """(decode, v0, low, high) of the adversarial half for ``method``."""
    torch = ts.torch
    half = BATCH // 2
    if method == "regular_at":
        x = ts.nchw(batch["image"][half:])
        return (lambda v: v), x, torch.tensor(0.0), torch.tensor(1.0)
    from manifold_robustness import transforms

    rows = batch["font_id"][half:] * 10 + batch["label"][half:]
    glyphs = ts.nchw(prototypes.reshape(-1, *prototypes.shape[2:])[rows])
    low, high = (torch.tensor(a) for a in transforms.FONTS_RANGES["hard"])
    return (lambda t: ts.render(glyphs, t)), torch.from_numpy(batch["theta"][half:].copy()), low, high


def check(clf, variables, data, batch):
    """One plain training step from the same weights on the same batch: same parameters after."""
    torch = ts.torch
    trainer = TorchTrainer(variables)
    with torch.no_grad():
        logits = trainer.model.eval()(ts.nchw(batch["image"])).numpy()
    expected = clf.logits_fn(variables)(jnp.asarray(batch["image"]))
    np.testing.assert_allclose(logits, np.asarray(expected), atol=1e-4)
    trainer.step(ts.nchw(batch["image"]), torch.from_numpy(batch["label"]).long())
    _, _, state = jax_steps(clf, variables, "normal", data, None, 0)
    after = jax.tree.map(lambda a: np.asarray(a)[0], state["variables"])
    expected = ts.cnn(after).state_dict()
    # a conv bias before batch norm has a zero gradient up to rounding (the norm removes it), so
    # Adam's first step moves it by lr · (rounding noise)/|rounding noise|: left out
    noise = {f"{i}.bias" for i, m in enumerate(trainer.model) if isinstance(m, torch.nn.Conv2d)}
    for name, value in trainer.model.state_dict().items():
        if value.dtype.is_floating_point and name not in noise:
            np.testing.assert_allclose(value.numpy(), expected[name].numpy(), atol=1e-4, err_msg=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method and side")
    parser.add_argument("--methods", default="regular_at,on_true_manifold_at")
    ts.add_arguments(parser)
    args = parser.parse_args()

    from manifold_robustness import models
    from manifold_robustness.training import trainer

    dev = jax.devices()[0]
    torch = ts.load(args.no_torch)
    train, prototypes = ts.fonts(args.fonts, "train", BATCH)
    arrays = {"prototypes": jnp.asarray(prototypes)}
    device = trainer.device_data(train, (28, 28, 1))
    batch = {"image": train.images, "label": train.labels, "font_id": train.font_ids, "theta": train.theta}
    clf, variables = models.create("cnn", (28, 28, 1), 10, jax.random.key(0))
    variables = jax.tree.map(np.asarray, variables)
    if torch is not None:
        check(clf, variables, device, batch)
        print("JAX and PyTorch logits and one plain training step agree (atol 1e-4)")
    print(f"device: {dev.device_kind} ({dev.platform}); batch {BATCH} = 50 clean + 50 adversarial, "
          f"inner attack 40 iterations, train mode; mean of {args.steps} steps")
    print(f"{'method':<22} {'JAX ms':>8} {'img/s':>6} {'compile s':>10}"
          + (f" {'PyTorch ms':>11} {'img/s':>6} {'ratio':>6}" if torch is not None else ""))
    for method in args.methods.split(","):
        ms, compile_s, _ = jax_steps(clf, variables, method, device, arrays, args.steps)
        line = f"{method:<22} {ms:>8.0f} {BATCH / ms * 1e3:>6.0f} {compile_s:>10.1f}"
        if torch is not None:
            torch.manual_seed(0)
            tr = TorchTrainer(variables)
            x, y = ts.nchw(batch["image"]), torch.from_numpy(batch["label"]).long()
            tr.adversarial_step(x, y, *torch_inputs(method, batch, prototypes))  # warm-up
            t0 = time.perf_counter()
            for _ in range(args.steps):
                tr.adversarial_step(x, y, *torch_inputs(method, batch, prototypes))
            pt = (time.perf_counter() - t0) / args.steps * 1e3
            line += f" {pt:>11.0f} {BATCH / pt * 1e3:>6.0f} {pt / ms:>6.2f}"
        print(line)


if __name__ == "__main__":
    main()
