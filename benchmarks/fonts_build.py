"""Full FONTS build (paper size): wall time and peak memory.

Target (issue: foundation): >= 1000 fonts x 10 letters x 112 transforms (~1.12 M images) in under
5 minutes on 2 cores with under 3 GiB peak memory.  Builds into a fresh temporary data directory
so the cache does not short-cut the measurement.

    .venv/bin/python benchmarks/fonts_build.py [--num-fonts 1000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-fonts", type=int, default=1000)
    parser.add_argument("--repetitions", type=int, default=112)
    args = parser.parse_args()

    from manifold_robustness.data import FontsConfig, fonts

    tmp = tempfile.mkdtemp(prefix="fonts-bench-")
    try:
        config = FontsConfig(num_fonts=args.num_fonts, repetitions=args.repetitions)
        t0 = time.perf_counter()
        built = fonts.build(config, data_dir=tmp, progress=True)
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fonts.build(config, data_dir=tmp)
        cached_s = time.perf_counter() - t0
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        disc = built.meta["discovery"]
        print(f"cores: {os.cpu_count()}")
        print(f"fonts found / usable / used: {disc['found']} / {disc['kept']} / {built.num_fonts}")
        print(f"images: {built.images.shape[0]:,} ({built.images.nbytes / 2**20:.0f} MiB uint8)")
        print(f"full build: {build_s:.1f} s  (target < 300 s)")
        print(f"cached load with checksum verification: {cached_s:.2f} s")
        print(f"peak resident memory: {peak_gib:.2f} GiB  (target < 3 GiB)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
