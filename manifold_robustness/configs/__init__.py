"""Experiment configs, one module per dataset, shipped with the package.

Each module (``fonts``, ``fashion_mnist``, ``emnist``, ``celeba``) defines ``PRESETS`` and
``get_config(preset)`` on top of :func:`manifold_robustness.runner.config.base`; its docstring
says what each preset runs, what it costs and what it is expected to show.  Load one with
``runner.config.load("fonts:quick")`` or ``python -m manifold_robustness experiment run --config
fonts:quick`` from any folder; ``experiments/`` at the top of the repository holds the scripts
that reproduce each dataset's claims with them.
"""
