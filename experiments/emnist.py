"""Reproduce the paper's claims on EMNIST: run a preset of
``manifold_robustness.configs.emnist`` (a killed run resumes where it stopped), then write the
four-claims report of its results.

    python experiments/emnist.py quick     # needs the official EMNIST files, see the config
    python experiments/emnist.py paper -o seeds=0,1 --results results/emnist_paper

The presets, what each costs and what it is expected to show are in the docstring of
``manifold_robustness/configs/emnist.py``.  ``--config experiments/emnist.py:PRESET`` works too.
"""

import sys

from manifold_robustness.cli import reproduce
from manifold_robustness.configs.emnist import PRESETS, get_config  # noqa: F401 (a config file too)

if __name__ == "__main__":
    sys.exit(reproduce("emnist", sys.argv[1:]))
