"""Training throughput of the paper's CNN on FONTS (CPU or GPU, whatever JAX sees).

Prints: images/s of one training step at batch 100; wall time of the paper recipe (20 epochs) at
N = 5000 for one seed and for 5 seeds trained side by side under vmap; compile time separately.
Target (classifier issue): 5 vmapped seeds cost less than 2.5x one seed.

    .venv/bin/python benchmarks/train_throughput.py [--n 5000] [--epochs 20] [--seeds 5]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--num-fonts", type=int, default=1000)
    args = parser.parse_args()

    from manifold_robustness import data, models, training
    from manifold_robustness.training import loop, methods

    fonts = data.FontsConfig(num_fonts=args.num_fonts)
    train = data.load("fonts", "train", limit=args.n, config=fonts, dtype=np.uint8)
    clf, _ = models.create("cnn", (28, 28, 1), 10, jax.random.key(0))
    cfg = training.TrainConfig(epochs=args.epochs)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), N={args.n}, epochs={args.epochs}")

    # one step at batch 100 (an epoch of a single batch), compile timed apart
    opt = loop.make_optimizer(cfg, 1)
    step = loop.compile_epoch(clf, opt, methods.make_builder("normal", methods.MethodContext(clf)), 100, max_traces=1)
    state = jax.tree.map(lambda x: x[None], loop.init_state(models.init_variables(clf, jax.random.key(1)), opt))
    batch = {"image": jnp.asarray(train.images[:100]), "label": jnp.asarray(train.labels[:100])}
    keys = jax.random.key(0)[None]
    t0 = time.perf_counter()
    state, m = step(state, batch, keys)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    reps = 50
    t0 = time.perf_counter()
    for _ in range(reps):
        state, m = step(state, batch, keys)
    jax.block_until_ready(m)
    step_s = (time.perf_counter() - t0) / reps
    print(f"train step, batch 100: {100 / step_s:,.0f} images/s ({step_s * 1e3:.1f} ms/step); first call incl. compile {compile_s:.2f} s")

    def timed(seeds):
        t0 = time.perf_counter()
        first = []
        training.train(clf, "normal", train, seeds=seeds, config=cfg, progress=False,
                       callback=lambda e, m: first.append(time.perf_counter() - t0) if e == 0 else None)
        total = time.perf_counter() - t0
        return total, first[0]

    one_total, one_first = timed([0])
    many_total, many_first = timed(list(range(args.seeds)))
    print(f"paper recipe, 1 seed : {one_total:6.1f} s wall (first epoch incl. compile {one_first:.1f} s)")
    print(f"paper recipe, {args.seeds} seeds: {many_total:6.1f} s wall (first epoch incl. compile {many_first:.1f} s)")
    print(f"{args.seeds} vmapped seeds / 1 seed = {many_total / one_total:.2f}x  (target < 2.5x)")
    print(f"seed-images/s: 1 seed {args.epochs * args.n / one_total:,.0f}, {args.seeds} seeds {args.seeds * args.epochs * args.n / many_total:,.0f}")


if __name__ == "__main__":
    main()
