"""Reproduce the paper's claims on Fashion-MNIST: run a preset of
``manifold_robustness.configs.fashion_mnist`` (a killed run resumes where it stopped), then write the
four-claims report of its results.

    python experiments/fashion_mnist.py quick     # about 36 minutes on 2 CPU cores (before the audit)
    python experiments/fashion_mnist.py paper -o seeds=0,1 --results results/fashion_mnist_paper

The presets, what each costs and what it is expected to show are in the docstring of
``manifold_robustness/configs/fashion_mnist.py``.  ``--config experiments/fashion_mnist.py:PRESET`` works too.
"""

import sys

from manifold_robustness.cli import reproduce
from manifold_robustness.configs.fashion_mnist import PRESETS, get_config  # noqa: F401 (a config file too)

if __name__ == "__main__":
    sys.exit(reproduce("fashion_mnist", sys.argv[1:]))
