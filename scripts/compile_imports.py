"""Byte-compile what the package and its tests import, by importing it (see scripts/setup.sh).

Every module of ``manifold_robustness`` (which brings in jax, flax, optax, orbax, tensorflow-datasets,
matplotlib, fontTools, ...) and the test runner's own packages; run with bytecode writing on.  The
two groups run in two processes at once (12 -> 8 s on 2 cores, the same 1938 files; a module both
import is compiled by each, which is harmless: Python writes each bytecode file whole).
"""

import importlib
import pkgutil
import subprocess
import sys
import time

TESTS = ["matplotlib.pyplot", "matplotlib.backends.backend_agg", "pytest", "xdist", "hypothesis", "nbclient",
         "nbformat", "ipykernel.kernelapp"]


def package() -> list[str]:
    import manifold_robustness

    names = [m.name for m in pkgutil.walk_packages(manifold_robustness.__path__, "manifold_robustness.")
             if not m.name.endswith(".__main__")]  # importing it would run the command line
    return names + ["jax.experimental", "orbax.checkpoint"]


def compile_group(names: list[str]) -> list[str]:
    """Import each of ``names`` → the ones that failed, with the error's type."""
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as err:  # noqa: BLE001 - an optional extra that is not installed: compile the rest
            failed.append(f"{name} ({type(err).__name__})")
    return failed


if __name__ == "__main__":
    if sys.argv[1:] == ["--tests"]:  # the second process
        print("\n".join(compile_group(TESTS)))
        sys.exit(0)
    t0 = time.perf_counter()
    other = subprocess.Popen([sys.executable, __file__, "--tests"], stdout=subprocess.PIPE, text=True)
    names = package()
    failed = compile_group(names)
    failed += [line for line in other.communicate()[0].splitlines() if line]
    count = len(names) + len(TESTS) - len(failed)
    print(f"setup: byte-compiled the imports of {count} modules in {time.perf_counter() - t0:.0f} s"
          + (f"; not importable here: {', '.join(failed)}" if failed else ""), file=sys.stderr)
