"""Reproduce the paper's claims on CelebA: run a preset of
``manifold_robustness.configs.celeba`` (a killed run resumes where it stopped), then write the
four-claims report of its results.

    python experiments/celeba.py quick     # needs the official CelebA files, see the config
    python experiments/celeba.py paper -o seeds=0,1 --results results/celeba_paper

The presets, what each costs and what it is expected to show are in the docstring of
``manifold_robustness/configs/celeba.py``.  ``--config experiments/celeba.py:PRESET`` works too.
"""

import sys

from manifold_robustness.cli import reproduce
from manifold_robustness.configs.celeba import PRESETS, get_config  # noqa: F401 (a config file too)

if __name__ == "__main__":
    sys.exit(reproduce("celeba", sys.argv[1:]))
