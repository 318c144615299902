"""Training throughput per method (paper CNN on FONTS) and the ratio to normal training.

One adversarial training step costs about 40 forward+backward passes of the attacked model on the
adversarial half (plus the decoder for learned-manifold methods).  For each method this times
epochs of N images at batch 100 after compilation (compile time printed apart).  Learned-manifold
methods use a small class-specific linear decoder here, so their figure is the attack's cost
without a VAE-GAN's.

    .venv/bin/python benchmarks/method_throughput.py [--n 1000] [--methods normal,regular_at,...]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT = "normal,augment,random_image_noise,regular_at,regular_at_weak,on_true_manifold_at,adversarial_transformation,on_learned_manifold_at,combined_true"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--methods", default=DEFAULT)
    parser.add_argument("--num-fonts", type=int, default=1000)
    args = parser.parse_args()

    from manifold_robustness import data, models, training, transforms
    from manifold_robustness.training import loop

    fonts = data.FontsConfig(num_fonts=args.num_fonts)
    train = data.load("fonts", "train", limit=args.n, config=fonts, dtype=np.uint8)
    clf, _ = models.create("cnn", (28, 28, 1), 10, jax.random.key(0))
    w = jax.random.normal(jax.random.key(1), (10, 10, 784)) * 0.3
    decode = lambda p, z, y: jax.nn.sigmoid(jnp.einsum("bd,bdp->bp", z, p["w"][y])).reshape(-1, 28, 28, 1)  # noqa: E731
    arrays = {"prototypes": jnp.asarray(data.fonts_prototypes(fonts)), "decoder": {"w": w}}
    ctx = training.MethodContext(clf, ranges=transforms.FONTS_RANGES["hard"], decode_fn=decode, arrays=arrays)
    latents = jax.random.uniform(jax.random.key(2), (args.n, 10), minval=-2, maxval=2)
    cfg = training.TrainConfig()
    device = training.trainer.device_data(train, clf.input_shape, {"latent": latents})
    opt = loop.make_optimizer(cfg, loop.steps_per_epoch(args.n, cfg.batch_size))
    state0 = jax.tree.map(lambda x: x[None], loop.init_state(models.init_variables(clf, jax.random.key(3)), opt))
    keys = jax.random.key(0)[None]
    print(f"device: {jax.devices()[0].device_kind}; N={args.n}, batch {cfg.batch_size}, inner attacks 40 iterations")
    print(f"{'method':<28} {'images/s':>9} {'cost/normal':>11} {'compile s':>10}")
    base = None
    for method in args.methods.split(","):
        epoch = loop.compile_epoch(clf, opt, training.make_builder(method, ctx), cfg.batch_size, max_traces=2)
        state = jax.tree.map(jnp.copy, state0)
        t0 = time.perf_counter()
        state, m = epoch(state, device, keys, arrays)
        jax.block_until_ready(m)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        state, m = epoch(state, device, keys, arrays)
        jax.block_until_ready(m)
        run = time.perf_counter() - t0
        rate = args.n / run
        base = base or rate
        print(f"{method:<28} {rate:>9.0f} {base / rate:>10.1f}x {first - run:>10.1f}")


if __name__ == "__main__":
    main()
