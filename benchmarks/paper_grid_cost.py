"""What the FONTS ``paper`` preset costs on this device: one group measured, the grid extrapolated.

A group is one (method, N) with the preset's 5 seeds trained side by side under ``vmap``.  For
each of the preset's methods this times two epochs of a group at ``--n`` images (the second one,
after compilation), and one paper evaluation attack per model (L∞, then on the true manifold:
40 iterations × 5 restarts on the preset's 1000 / 2500 test images, early exit off: an upper
bound).  The grid's cost is then extrapolated: an epoch costs ∝ N (the steps are the same
program), so

    grid ≈ Σ_methods Σ_N  epochs · (N / n) · epoch_s(method)  +  runs · attack_s.

Left out (said in the output): the class VAE-GANs' training (``benchmarks/vaegan_throughput.py``),
the supplement's extra attacks (L2, C&W, transfer: about 3.6× the L∞ attack), the audit (~16× one
attack on 200 images) and the distances.  Images, θ and prototypes are random arrays of FONTS'
shapes (speed does not depend on content), so no FONTS build is needed; the on-learned method
runs through a class-specific linear decoder (a VAE-GAN decoder costs more).

Goal (performance issue, one GPU): the full grid in < 1 GPU-hour.

    .venv/bin/python benchmarks/paper_grid_cost.py [--n 5000] [--methods all] [--quick]

``--quick``: N = 200, 1 epoch of everything and 100 attacked images: checks that it runs (CPU).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np


def _timed(fn):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="training images of the measured groups")
    parser.add_argument("--methods", default="all", help="comma-separated, or all (the preset's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check that it runs")
    args = parser.parse_args()

    from manifold_robustness import attacks, models, training, transforms
    from manifold_robustness.data import Dataset
    from manifold_robustness.runner import config
    from manifold_robustness.training import loop

    c = config.load("fonts:paper")
    methods = c.methods if args.methods == "all" else tuple(args.methods.split(","))
    n = 200 if args.quick else args.n
    seeds = len(c.seeds)
    examples = {"linf": 100 if args.quick else int(c.eval.regular_examples),
                "on_true_manifold": 100 if args.quick else int(c.eval.on_manifold_examples)}
    rng = np.random.default_rng(0)
    fonts = 1000
    train = Dataset(name="fonts", split="train", images=rng.integers(0, 256, (n, 28, 28, 1), np.uint8), labels=(np.arange(n) % 10).astype(np.int32),
                    num_classes=10, font_ids=rng.integers(0, fonts, n).astype(np.int32),
                    theta=np.asarray(transforms.sample_theta(jax.random.key(0), n, transforms.FONTS_RANGES["hard"])))
    prototypes = jnp.asarray(rng.uniform(size=(fonts, 10, 28, 28, 1)), jnp.float32)
    clf, _ = models.create(c.model, (28, 28, 1), 10, jax.random.key(0))
    w = jax.random.normal(jax.random.key(1), (10, 10, 784)) * 0.3
    decode = lambda p, z, y: jax.nn.sigmoid(jnp.einsum("bd,bdp->bp", z, p["w"][y])).reshape(-1, 28, 28, 1)  # noqa: E731
    arrays = {"prototypes": prototypes, "decoder": {"w": w}}
    ctx = training.MethodContext(clf, ranges=transforms.FONTS_RANGES["hard"], decode_fn=decode, arrays=arrays,
                                 attack={"iterations": int(c.adversarial.iterations)})
    latents = jax.random.uniform(jax.random.key(2), (n, 10), minval=-2, maxval=2)
    cfg = training.TrainConfig(**{k: c.train[k] for k in ("batch_size", "learning_rate", "lr_decay", "weight_decay", "b1", "b2")})
    device = training.trainer.device_data(train, clf.input_shape, {"latent": latents})
    opt = loop.make_optimizer(cfg, loop.steps_per_epoch(n, cfg.batch_size))
    state0 = jax.vmap(lambda k: loop.init_state(models.init_variables(clf, k), opt))(jax.random.split(jax.random.key(3), seeds))
    keys = jax.random.split(jax.random.key(4), seeds)

    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform}); group = {seeds} seeds at N = {n}, batch {cfg.batch_size}, "
          f"inner attacks {c.adversarial.iterations} iterations")
    epoch_s = {}
    for method in methods:
        epoch = loop.compile_epoch(clf, opt, training.make_builder(method, ctx), cfg.batch_size, max_traces=1)
        state = jax.tree.map(jnp.copy, state0)
        first = _timed(lambda: epoch(state, device, keys, arrays)[1])  # noqa: B023 (called at once)
        state = jax.tree.map(jnp.copy, state0)
        epoch_s[method] = _timed(lambda: epoch(state, device, keys, arrays)[1])  # noqa: B023
        print(f"  {method:<28} epoch {epoch_s[method]:7.2f} s ({seeds * n / epoch_s[method]:8.0f} img/s over seeds), "
              f"compile {first - epoch_s[method]:5.1f} s; group of {c.train.epochs} epochs: "
              f"{c.train.epochs * epoch_s[method]:7.1f} s")

    variables = models.init_variables(clf, jax.random.key(5))
    attack_s = 0.0
    for name, count in examples.items():
        atk = attacks.make(name, iterations=int(c.eval.iterations), restarts=int(c.eval.restarts), early_exit=False,
                           chunks=1)
        fn = jax.jit(lambda v, b, k: atk(clf.logits_fn(v), b, k, {"prototypes": prototypes}).success)  # noqa: B023
        batch = {"image": jnp.asarray(train.images[: c.eval.batch], jnp.float32) / 255.0,
                 "label": jnp.asarray(train.labels[: c.eval.batch], jnp.int32),
                 "theta": jnp.asarray(train.theta[: c.eval.batch]), "font_id": jnp.asarray(train.font_ids[: c.eval.batch])}
        first = _timed(lambda: fn(variables, batch, jax.random.key(0)))  # noqa: B023
        one = _timed(lambda: fn(variables, batch, jax.random.key(1)))  # noqa: B023
        per_model = one * count / c.eval.batch
        attack_s += per_model
        print(f"  attack {name:<21} {per_model:7.1f} s per model on {count} images (compile {first - one:4.1f} s; "
              "every iteration run: an upper bound)")

    sizes = [int(s) for s in c.sizes]
    train_total = sum(c.train.epochs * (s / n) * epoch_s[m] for m in methods for s in sizes)
    runs = len(methods) * len(sizes) * seeds
    total = train_total + runs * attack_s
    print(f"extrapolated FONTS paper grid ({len(methods)} methods × N {sizes} × {seeds} seeds = {runs} runs): "
          f"training {train_total / 3600:.2f} h + attacks {runs * attack_s / 3600:.2f} h = {total / 3600:.2f} h "
          f"on this device (goal on one GPU: < 1 h)")
    print("  not included: the class VAE-GANs, the L2 / C&W / transfer attacks (~3.6x the L-inf attack), "
          "the audit, the distances")


if __name__ == "__main__":
    main()
