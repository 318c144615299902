"""Training throughput of the class VAE-GANs: all class models stacked, one compiled step.

Prints, for the device JAX sees: compile time of the training step (apart), images/s of one step
with every class model at batch 100 (best and median of interleaved repeats) for each way over
the class models (``--over-models``: "vmap", all at once over stacked weights, and "map",
``lax.map``, one model after another), and the estimated wall time of the paper's schedules at
the rate of the way the library picks on this backend (``vaegan_train.resolve_over_models``).
With ``--routing`` also times encode/decode/decode-gradient through each route.

Beside it, the same step in PyTorch eager on the CPU, same initial weights: per class model the
encoder, decoder and discriminator in train mode, the three losses summed over the batch, each
network's gradient of its own loss by ``torch.autograd.grad`` from one forward pass, and one
``torch.optim.Adam`` (β 0.5, 0.9, coupled weight decay 1e-4, ``LambdaLR`` decay) over every
parameter.  Two ways over the class models: ``loop`` (a Python loop over the models) and ``vmap``
(``torch.func.stack_module_state`` + ``vmap`` of ``functional_call``, autograd through it); one
step of each is raced (printed) and the faster is timed like JAX.  Before timing, model 0's three
gradients are checked against ``vaegan_losses.gradients`` on the same images and noise (each within
1e-4 of its network's largest gradient entry), for both ways.

Target (issue 14, item 2): >= 2x PyTorch eager's images/s.
Measured (2-core AMD EPYC (AVX-512), jax 0.10.2, torch 2.13.0 CPU, 2026-12-03; 10 classes x batch 100, 64 channels): JAX
by lax.map 353 images/s, by vmap 324, against PyTorch's loop 411 (vmap 288): 0.86x (0.79x by vmap,
same run; before this choice, vmap measured 297 against 338, 0.93x).  One step is ~320 MFLOP
per image (XLA's cost analysis of ``vaegan_losses.gradients``), so JAX runs at ~113 GFLOP/s and
PyTorch at ~132: the step is bound by arithmetic, and no way of batching the models reaches 2x
on these cores.  On a 2-core AMD EPYC with AVX2 only (2026-12-06, ``--over-models map --repeats
3``): JAX 260 images/s against PyTorch's loop 267, 0.97x (an earlier run there: 234 against 286,
0.82x); a square 2048² matmul runs at ~130 GFLOP/s on that machine, so 2x PyTorch would need
~170 GFLOP/s.

Images are random uint8 (speed does not depend on content), so no dataset is needed.  Shared CPUs
vary a lot from one second to the next: compare the best figures of one run, not runs.

    .venv/bin/python benchmarks/vaegan_throughput.py [--classes 10] [--conv auto] [--routing] [--no-torch]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import torch_side as ts

# paper schedules (reference digest paper §3.2): epochs × training images
LAM = 2.75  # every model's reconstruction weight λ (Fashion-MNIST's)
SCHEDULES = {"FONTS (10 × 960k)": 10 * 960_000, "EMNIST (30 × 240k)": 30 * 240_000, "Fashion-MNIST (60 × 60k)": 60 * 60_000}


def _timed(fn, *args, calls: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / calls


def setup(args):
    """(vae, config, variables, images, rows) of a run: random uint8 images, each model's rows."""
    from manifold_robustness.manifolds import vaegan

    cfg = vaegan.VAEGANConfig(channels=args.channels)
    k, b, steps = args.classes, cfg.train.batch_size, args.steps
    vae, variables = vaegan.create((28, 28, 1), cfg, range(k), jax.random.key(0), conv=args.conv)
    images = jax.random.randint(jax.random.key(1), (10_000, 28, 28, 1), 0, 256).astype(jnp.uint8)
    rows = jax.random.randint(jax.random.key(2), (k, steps, b), 0, images.shape[0])
    return vae, cfg, variables, images, rows


def train_step(args, vae, cfg, variables, images, rows) -> float:
    """JAX images/s of a training step, each way over the class models (``--over-models``) timed
    interleaved; returns the rate of the way the library picks on this backend ("auto")."""
    from manifold_robustness.manifolds import vaegan_train

    k, b, steps = args.classes, cfg.train.batch_size, args.steps
    keys = jax.random.split(jax.random.key(3), (k, steps))
    lams = jnp.full((k,), LAM, jnp.float32)
    count, per_epoch = jnp.int32(steps), jnp.int32(600)  # run every step of the chunk; the schedule's epoch
    ways = args.over_models.split(",")
    runs, compile_s = {}, {}
    for way in ways:
        state = vaegan_train.init_state(cfg, jax.tree.map(jnp.copy, variables), 600)
        static = dict(vae=vae, step_config=vaegan_train._step_config(cfg), over_models=way)
        t0 = time.perf_counter()
        compiled = vaegan_train.run_steps.lower(state, images, rows, keys, lams, count, per_epoch, **static).compile()
        compile_s[way] = time.perf_counter() - t0
        state, _ = compiled(state, images, rows, keys, lams, count, per_epoch)  # warm-up (the state is donated)
        runs[way] = [compiled, state]
    times = {way: [] for way in ways}
    for _ in range(args.repeats):  # interleaved, so a slow second hits every way alike
        for way, run in runs.items():
            t0 = time.perf_counter()
            run[1], m = run[0](run[1], images, rows, keys, lams, count, per_epoch)
            jax.block_until_ready(m)
            times[way].append((time.perf_counter() - t0) / steps)
    print(f"training step, {k} class models x batch {b} ({args.channels}/{2 * args.channels}/{4 * args.channels} "
          f"channels, conv={args.conv}):")
    for way, ts_ in times.items():
        best, median = min(ts_), statistics.median(ts_)
        print(f"  over models by {way:4s}: compile {compile_s[way]:.1f} s; {k * b / best:,.0f} images/s best, "
              f"{k * b / median:,.0f} median ({best * 1e3:.0f} / {median * 1e3:.0f} ms per step of {k * b} images)")
    auto = vaegan_train.resolve_over_models("auto")
    way = auto if auto in times else ways[0]
    print(f"  the library's choice here: {auto}")
    return k * b / min(times[way])


# --- the PyTorch side ------------------------------------------------------------------------------


def torch_losses(enc, dec, dis, x, eps, lam):
    """L_enc, L_dec, L_dis summed over the batch (and over the models when stacked)."""
    F = ts.F
    mean, logvar = enc(x)
    xhat = dec(mean + ts.torch.exp(0.5 * logvar) * eps)
    d_real, d_fake = dis(x), dis(xhat)  # batch norm sees the real batch, then the reconstructions
    l1 = (lam * (x - xhat).abs()).sum()
    kl = -0.5 * (1 + logvar - mean**2 - logvar.exp()).sum()
    return l1 + kl, l1 - F.logsigmoid(d_fake).sum(), -(F.logsigmoid(d_real) + F.logsigmoid(-d_fake)).sum()


def own_gradients(losses, params):
    """Each network's gradient of its own loss; ``params``: three lists of tensors."""
    grads = []
    for i, (loss, p) in enumerate(zip(losses, params)):
        grads += ts.torch.autograd.grad(loss, p, retain_graph=i < 2)
    return grads


class TorchVAEGANs:
    """The class models in PyTorch, ``way`` "loop" (modules) or "vmap" (stacked, torch.func)."""

    def __init__(self, variables, cfg, classes: int, way: str):
        torch = ts.torch
        self.way, self.latent_dim = way, cfg.latent_dim
        per_model = [[m.train() for m in ts.vaegan_nets(variables, c)] for c in range(classes)]
        if way == "loop":
            self.models = per_model
            self.params = [[list(m.parameters()) for m in nets] for nets in per_model]
        else:
            from torch.func import functional_call, stack_module_state, vmap

            self.stacked = [stack_module_state([nets[i] for nets in per_model]) for i in range(3)]
            bases = [copy.deepcopy(per_model[0][i]).to("meta") for i in range(3)]
            self.models = [[vmap(lambda p, b, x, m=m: functional_call(m, (p, b), (x,))) for m in bases]]
            self.params = [[list(p.values()) for p, _ in self.stacked]]
        flat = [p for nets in self.params for ps in nets for p in ps]
        t = cfg.train
        self.opt = torch.optim.Adam(flat, lr=t.learning_rate, betas=(t.b1, t.b2), weight_decay=t.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: t.lr_decay ** (1 + s / 600))

    def gradients(self, x, eps):
        """x: [K, B, 1, H, W], eps: [K, B, d] → every parameter's gradient, in ``self.params`` order."""
        if self.way == "loop":
            return [g for nets, p, xk, ek in zip(self.models, self.params, x, eps)
                    for g in own_gradients(torch_losses(*nets, xk, ek, LAM), p)]
        nets = [lambda inp, f=f, ps=ps: f(ps[0], ps[1], inp) for f, ps in zip(self.models[0], self.stacked)]
        return own_gradients(torch_losses(*nets, x, eps, LAM), self.params[0])

    def step(self, images, rows):
        x = images[rows].float().div_(255)
        eps = ts.torch.randn(*x.shape[:2], self.latent_dim)
        for p, g in zip((p for nets in self.params for ps in nets for p in ps), self.gradients(x, eps)):
            p.grad = g
        self.opt.step()
        self.sched.step()


def torch_check(vae, variables, trainer, images, classes):
    """Model 0's gradients from PyTorch against ``vaegan_losses.gradients`` on the same data."""
    from manifold_robustness.manifolds import vaegan_losses

    torch = ts.torch
    x = images[:16].astype(np.float32) / 255
    eps = np.random.default_rng(0).normal(size=(16, vae.latent_dim)).astype(np.float32)
    xs, es = np.repeat(ts.nchw(x)[None].numpy(), classes, 0), np.repeat(eps[None], classes, 0)
    got = trainer.gradients(torch.from_numpy(xs), torch.from_numpy(es))
    one = jax.tree.map(jnp.asarray, ts.take(variables, 0))
    grads, _, _ = vaegan_losses.gradients(vae, one, jnp.asarray(x), jnp.asarray(eps), LAM)
    stats = ts.take(variables["batch_stats"], 0)
    ref = ts.vaegan_nets({"params": jax.tree.map(lambda g: np.asarray(g)[None], grads),
                          "batch_stats": jax.tree.map(lambda a: a[None], stats)}, 0)
    per_net = [len(list(m.parameters())) for m in ref]
    got = iter(got)
    for net, n in zip(ref, per_net):
        want = [p.detach().numpy() for p in net.parameters()]
        have = [next(got).detach().numpy() for _ in range(n)]
        have = have if trainer.way == "loop" else [h[0] for h in have]
        scale = max(np.abs(w).max() for w in want)
        for h, w in zip(have, want):
            what = f"{type(net).__name__} ({trainer.way})"
            np.testing.assert_allclose(h, w, atol=1e-4 * scale, err_msg=what)


def torch_step(args, vae, cfg, variables, images, rows) -> float:
    """The faster PyTorch way's best images/s (timed like JAX's), after the gradient check."""
    torch = ts.torch
    images_t = torch.from_numpy(np.asarray(images).transpose(0, 3, 1, 2).copy())
    rows_t = torch.from_numpy(np.asarray(rows).astype(np.int64))
    host = jax.tree.map(np.array, variables)
    race = {}
    for way in ("loop", "vmap"):
        trainer = TorchVAEGANs(host, cfg, args.classes, way)
        torch_check(vae, host, trainer, np.asarray(images), args.classes)
        trainer.step(images_t, rows_t[:, 0])  # warm-up
        t0 = time.perf_counter()
        trainer.step(images_t, rows_t[:, 0])
        race[way] = (time.perf_counter() - t0, trainer)
    way = min(race, key=lambda w: race[w][0])
    k, b = args.classes, cfg.train.batch_size
    print(f"PyTorch (gradients agree with JAX's, both ways): one step "
          + ", ".join(f"{w} {k * b / t:,.0f} images/s" for w, (t, _) in race.items()) + f"; timing {way}")
    trainer, times = race[way][1], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for s in range(args.steps):
            trainer.step(images_t, rows_t[:, s])
        times.append((time.perf_counter() - t0) / args.steps)
    best, median = min(times), statistics.median(times)
    print(f"  {k * b / best:,.0f} images/s best, {k * b / median:,.0f} median "
          f"({best * 1e3:.0f} / {median * 1e3:.0f} ms per step)")
    return k * b / best


def routing(args) -> None:
    from manifold_robustness import models
    from manifold_robustness.manifolds import vaegan

    vae, v = vaegan.create((28, 28, 1), vaegan.VAEGANConfig(channels=args.channels), range(args.classes), jax.random.key(0), conv=args.conv)
    for batch in (100, 500):
        x = jax.random.uniform(jax.random.key(1), (batch, 28, 28, 1))
        y = jax.random.randint(jax.random.key(3), (batch,), 0, args.classes)  # mixed labels, as a test set's
        z = vaegan.sample_latents(jax.random.key(2), batch, vae.latent_dim)
        fns = {}
        for route in vaegan.ROUTES:
            fns[f"encode {route}"] = (jax.jit(lambda v, x, y, r=route: vaegan.encode(vae, v, x, y, route=r)), (v, x, y))
            fns[f"decode {route}"] = (jax.jit(lambda v, z, y, r=route: vaegan.decode(vae, v, z, y, route=r)), (v, z, y))
            grad = jax.grad(lambda z, v, y, r=route: vaegan.decode(vae, v, z, y, route=r).sum())
            fns[f"decode+grad {route}"] = (jax.jit(grad), (z, v, y))
        # what class-homogeneous batches would allow: model 0 alone on every row, one batched apply
        one = jax.grad(lambda z, v: models.apply_graph(vae.graph("decoder"), jax.tree.map(
            lambda a: a[0], vaegan.net_variables(v, "decoder")), z)[0].sum())
        fns["decode+grad one model"] = (jax.jit(one), (z, v))
        for fn, a in fns.values():
            _timed(fn, *a)
        times = {name: [] for name in fns}
        for _ in range(args.repeats):  # interleaved, so a slow second hits every variant alike
            for name, (fn, a) in fns.items():
                times[name].append(_timed(fn, *a, calls=3))
        print(f"routing, {args.classes} classes, batch {batch} (best of {args.repeats}):")
        for name, ts in times.items():
            print(f"  {name:20s} {min(ts) * 1e3:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--channels", type=int, default=64, help="first layer's channels (paper: 64)")
    parser.add_argument("--conv", default="auto", choices=("auto", "xla", "patches"))
    parser.add_argument("--over-models", default="vmap,map", help="ways over the class models to time")
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--routing", action="store_true", help="also time encode/decode through each route")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch side")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}, {jax.device_count()} device(s))")
    torch = ts.load(args.no_torch)
    if torch is not None and jax.default_backend() != "cpu":
        print(f"JAX runs on {jax.default_backend()}, PyTorch on the CPU: JAX figures only")
        torch = None
    run = setup(args)
    rate = train_step(args, *run)
    if torch is not None:
        pt = torch_step(args, *run)
        print(f"JAX / PyTorch = {rate / pt:.2f}x  (best against best; target >= 2x)")
    print(f"estimated wall time at {rate:,.0f} images/s (all {args.classes} classes of a dataset train together):")
    for name, images in SCHEDULES.items():
        print(f"  {name:26s} {images / rate / 3600:6.1f} h")
    if args.routing:
        routing(args)


if __name__ == "__main__":
    main()
