"""Byte-compile what the package and its tests import, by importing it (see scripts/setup.sh).

Every module of ``manifold_robustness`` (which brings in jax, flax, optax, orbax, tensorflow-datasets,
matplotlib, fontTools, ...) and the test runner's own packages; run with bytecode writing on.
"""

import importlib
import pkgutil
import sys
import time

import manifold_robustness

t0 = time.perf_counter()
names = [m.name for m in pkgutil.walk_packages(manifold_robustness.__path__, "manifold_robustness.")
         if not m.name.endswith(".__main__")]  # importing it would run the command line
names += ["matplotlib.pyplot", "matplotlib.backends.backend_agg", "pytest", "xdist", "hypothesis", "nbclient",
          "nbformat", "ipykernel.kernelapp", "jax.experimental", "orbax.checkpoint"]
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as err:  # noqa: BLE001 - an optional extra that is not installed: compile the rest
        failed.append(f"{name} ({type(err).__name__})")
print(f"setup: byte-compiled the imports of {len(names) - len(failed)} modules in {time.perf_counter() - t0:.0f} s"
      + (f"; not importable here: {', '.join(failed)}" if failed else ""), file=sys.stderr)
