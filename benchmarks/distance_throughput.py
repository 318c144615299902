"""Distance to the manifold: how long claim 1's two measurements take.

1. k-NN local subspace (the paper's EMNIST approximation): 1000 queries against 60k training
   images (Fashion-MNIST from /usr/share/datasets/fashion-mnist when present, else random images
   of that shape): PCA fit + encoding of the training set, the 50-NN search in PCA space, and the
   least-squares distances in both variants (neighbours centred at x and at their mean).
2. The true FONTS projection of 1000 perturbed test images (small FONTS: 100 fonts × 10 letters ×
   12 transforms): the paper's Adam loop, 100 iterations, from the example's own θ plus 3 random
   restarts.

Every figure is a steady-state time (the first call, which compiles, is shown apart).
Target (distance issue, 2 CPU cores): each measurement under a minute.

    .venv/bin/python benchmarks/distance_throughput.py [--queries 1000] [--train 60000] [--fonts-images 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np


def timed(fn, *args, **kwargs):
    """(result, seconds of the first call, seconds of a second call)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args, **kwargs))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, first, time.perf_counter() - t0


def knn_benchmark(n_queries: int, n_train: int) -> None:
    from manifold_robustness import data
    from manifold_robustness.manifolds import knn

    if Path("/usr/share/datasets/fashion-mnist").exists():
        train = data.load("fashion_mnist", "train", limit=min(n_train, 60000), dtype=np.uint8).images
        queries = data.load("fashion_mnist", "test", limit=n_queries).images
        source = "Fashion-MNIST"
    else:
        rng = np.random.default_rng(0)
        train = rng.integers(0, 256, (n_train, 28, 28, 1), dtype=np.uint8)
        queries = rng.uniform(size=(n_queries, 28, 28, 1)).astype(np.float32)
        source = "random images"
    rng = np.random.default_rng(1)
    perturbed = np.clip(queries + rng.choice([-0.3, 0.3], size=queries.shape), 0, 1).astype(np.float32)
    print(f"k-NN: {len(queries)} queries against {len(train)} training images ({source}), 40 PCA components, k = 50")

    index, first, steady = timed(knn.build_index, train, 40)
    print(f"  PCA fit + encode the training set   {steady:7.2f} s   (first call {first:.2f} s)")
    (nb, _), first, steady_search = timed(knn.nearest_neighbors, index, queries, 50)
    print(f"  50-NN search in PCA space           {steady_search:7.2f} s   (first call {first:.2f} s)")
    total = steady + steady_search
    for center in ("point", "mean"):
        res, first, t = timed(knn.subspace_distance, index, nb, queries, perturbed, center)
        total += t if center == "point" else 0.0
        print(f"  least squares, centred at {center:<5}     {t:7.2f} s   (first call {first:.2f} s)"
              f"   median distance {float(jnp.median(res.distance)):.3f}, angle {float(jnp.median(res.angle)):.1f} deg")
    print(f"  total for one variant (index + search + distances): {total:.2f} s")


def fonts_benchmark(n_images: int) -> None:
    from manifold_robustness import data
    from manifold_robustness.manifolds import projection

    config = data.FontsConfig(num_fonts=100, repetitions=12, test_repetitions=2)
    test = data.load("fonts", "test", limit=n_images, config=config)
    protos = jnp.asarray(data.fonts_prototypes(config))
    rng = np.random.default_rng(2)
    perturbed = np.clip(test.images + rng.choice([-0.1, 0.1], size=test.images.shape), 0, 1).astype(np.float32)
    cfg = projection.ProjectionConfig()
    print(f"FONTS true projection: {n_images} images, {cfg.iterations} Adam iterations, 1 + {cfg.restarts} starts")
    res, first, t = timed(projection.project_true, protos, test.font_ids, test.labels, perturbed, test.theta,
                          jax.random.key(0), config=cfg)
    norm = np.linalg.norm((perturbed - test.images).reshape(n_images, -1), axis=1)
    print(f"  projection                          {t:7.2f} s   (first call {first:.2f} s)"
          f"   {n_images * (1 + cfg.restarts) * cfg.iterations / t:,.0f} renderer gradients/s")
    print(f"  ±0.1 pixel noise: median distance / ||delta|| = {float(np.median(np.asarray(res.distance) / norm)):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--train", type=int, default=60000)
    parser.add_argument("--fonts-images", type=int, default=1000)
    args = parser.parse_args()
    dev = jax.devices()[0]
    print(f"device: {dev.device_kind} ({dev.platform})")
    knn_benchmark(args.queries, args.train)
    fonts_benchmark(args.fonts_images)


if __name__ == "__main__":
    main()
