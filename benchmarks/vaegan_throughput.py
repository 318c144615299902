"""Training throughput of the class VAE-GANs: all class models stacked, one step under vmap.

Prints, for the device JAX sees: compile time of the training step (apart), images/s of one step
with every class model at batch 100 (best and median of interleaved repeats), and the estimated
wall time of the paper's schedules at that rate (Fashion-MNIST: 60 epochs over 60k images).
With ``--routing`` also times encode/decode/decode-gradient through both routes.

Images are random uint8 (speed does not depend on content), so no dataset is needed.  Shared CPUs
vary a lot from one second to the next: compare the best figures of one run, not runs.

    .venv/bin/python benchmarks/vaegan_throughput.py [--classes 10] [--conv auto] [--routing]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

# paper schedules (reference digest paper §3.2): epochs × training images
SCHEDULES = {"FONTS (10 × 960k)": 10 * 960_000, "EMNIST (30 × 240k)": 30 * 240_000, "Fashion-MNIST (60 × 60k)": 60 * 60_000}


def _timed(fn, *args, calls: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        out = fn(*args)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / calls


def train_step(args) -> float:
    from manifold_robustness.manifolds import vaegan, vaegan_train

    cfg = vaegan.VAEGANConfig(channels=args.channels)
    k, b, steps = args.classes, cfg.train.batch_size, args.steps
    vae, variables = vaegan.create((28, 28, 1), cfg, range(k), jax.random.key(0), conv=args.conv)
    state = vaegan_train.init_state(cfg, variables, 600)
    images = jax.random.randint(jax.random.key(1), (10_000, 28, 28, 1), 0, 256).astype(jnp.uint8)
    rows = jax.random.randint(jax.random.key(2), (k, steps, b), 0, images.shape[0])
    keys = jax.random.split(jax.random.key(3), (k, steps))
    lams = jnp.full((k,), 2.75, jnp.float32)
    static = dict(vae=vae, step_config=vaegan_train._step_config(cfg))
    count, per_epoch = jnp.int32(steps), jnp.int32(600)  # run every step of the chunk; the schedule's epoch

    t0 = time.perf_counter()
    compiled = vaegan_train.run_steps.lower(state, images, rows, keys, lams, count, per_epoch, **static).compile()
    compile_s = time.perf_counter() - t0
    state, _ = compiled(state, images, rows, keys, lams, count, per_epoch)  # warm-up (the state is donated: keep the new one)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        state, m = compiled(state, images, rows, keys, lams, count, per_epoch)
        jax.block_until_ready(m)
        times.append((time.perf_counter() - t0) / steps)
    best, median = min(times), statistics.median(times)
    print(f"training step, {k} class models x batch {b} ({args.channels}/{2 * args.channels}/{4 * args.channels} channels, conv={args.conv}):")
    print(f"  compile {compile_s:.1f} s (once per run)")
    print(f"  {k * b / best:,.0f} images/s best, {k * b / median:,.0f} median ({best * 1e3:.0f} / {median * 1e3:.0f} ms per step of {k * b} images)")
    return k * b / best


def routing(args) -> None:
    from manifold_robustness.manifolds import vaegan

    vae, v = vaegan.create((28, 28, 1), vaegan.VAEGANConfig(channels=args.channels), range(args.classes), jax.random.key(0), conv=args.conv)
    for batch in (100, 500):
        x = jax.random.uniform(jax.random.key(1), (batch, 28, 28, 1))
        y = jnp.arange(batch) % args.classes
        z = vaegan.sample_latents(jax.random.key(2), batch, vae.latent_dim)
        fns = {}
        for route in vaegan.ROUTES:
            fns[f"encode {route}"] = (jax.jit(lambda v, x, y, r=route: vaegan.encode(vae, v, x, y, route=r)), (v, x, y))
            fns[f"decode {route}"] = (jax.jit(lambda v, z, y, r=route: vaegan.decode(vae, v, z, y, route=r)), (v, z, y))
            grad = jax.grad(lambda z, v, y, r=route: vaegan.decode(vae, v, z, y, route=r).sum())
            fns[f"decode+grad {route}"] = (jax.jit(grad), (z, v, y))
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
    parser.add_argument("--steps", type=int, default=3, help="training steps per timed call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--routing", action="store_true", help="also time encode/decode through both routes")
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}, {jax.device_count()} device(s))")
    rate = train_step(args)
    print(f"estimated wall time at {rate:,.0f} images/s (all {args.classes} classes of a dataset train together):")
    for name, images in SCHEDULES.items():
        print(f"  {name:26s} {images / rate / 3600:6.1f} h")
    if args.routing:
        routing(args)


if __name__ == "__main__":
    main()
