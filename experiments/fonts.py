"""Reproduce the paper's claims on FONTS: run a preset of
``manifold_robustness.configs.fonts`` (a killed run resumes where it stopped), then write the
four-claims report of its results.

    python experiments/fonts.py quick     # what `make run` runs: about 5 minutes on 2 CPU cores
    python experiments/fonts.py paper -o seeds=0,1 --results results/fonts_paper

The presets, what each costs and what it is expected to show are in the docstring of
``manifold_robustness/configs/fonts.py``.  ``--config experiments/fonts.py:PRESET`` works too.
"""

import sys

from manifold_robustness.cli import reproduce
from manifold_robustness.configs.fonts import PRESETS, get_config  # noqa: F401 (a config file too)

if __name__ == "__main__":
    sys.exit(reproduce("fonts", sys.argv[1:]))
