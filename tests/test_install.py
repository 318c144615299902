"""The package installs like a library: a wheel built from this checkout, installed by pip (not
editable) into a fresh virtual environment outside the repository, runs a ``fonts:tiny``
experiment and its report from a folder that knows nothing of the repository.

The new environment sees the test environment's packages (see the test), as a Colab runtime has
its own, so pip checks the wheel's requirements against them instead of resolving them from the
registry again (the set-up did that for the same requirements); the experiment's programs come
from the tests' persistent compilation cache when another test compiled them already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="module")
def wheel(clean_checkout, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", out, clean_checkout])
    (path,) = out.glob("manifold_robustness-*.whl")
    return path


def test_wheel_ships_the_configs_and_the_report_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("fonts", "fashion_mnist", "emnist", "celeba"):
        assert f"manifold_robustness/configs/{module}.py" in names
    assert "manifold_robustness/report/paper_data.json" in names
    assert not [n for n in names if n.startswith(("tests/", "experiments/", "benchmarks/"))]
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in meta  # the SPDX form (the table form is deprecated)
    assert "Provides-Extra: gpu" in meta and "jax[cuda13]" in meta


def test_wheel_in_a_fresh_venv_runs_an_experiment_from_any_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    # The new environment reads the dependencies from this one's site-packages (a path, not an
    # install: no editable hook of this checkout comes along) instead of unpacking ~1 GB of wheels
    # again (35 s of the test's 75).  This interpreter's pip then installs the wheel, checking its
    # requirements against those packages; resolving them from the registry once more is what
    # `make setup` just did for the same requirements (8 of the test's ~45 s).
    own = sysconfig.get_paths()["purelib"]  # this environment's site-packages
    (next((venv / "lib").glob("python*/site-packages")) / "dependencies.pth").write_text(own + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", wheel])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["MANIFOLD_ROBUSTNESS_DATA"] = str(Path(os.environ["MANIFOLD_ROBUSTNESS_DATA"]).resolve())
    env["JAX_COMPILATION_CACHE_DIR"] = str(Path(env["MANIFOLD_ROBUSTNESS_DATA"]) / "jax_cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    where = _run([python, "-c", "import manifold_robustness as m; print(m.__file__)"], cwd=elsewhere, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # the installed copy, not the checkout
    assert not Path(where.stdout.strip()).is_relative_to(REPO)

    mr = [python, "-m", "manifold_robustness"]
    # the grid of the store-integrity tests (one N, no distances): the same compiled programs
    grid = ["-o", "model=mlp", "-o", "sizes=100", "-o", "distances.methods=()"]
    run = _run([*mr, "experiment", "run", "--config", "fonts:tiny", *grid, "--results", "tiny", "--quiet"],
               cwd=elsewhere, env=env)
    assert "2/2 runs of the whole grid done" in run.stdout, run.stdout
    _run([*mr, "report", "--results", "tiny"], cwd=elsewhere, env=env)
    verdicts = json.loads((elsewhere / "tiny" / "report" / "verdicts.json").read_text())
    assert sorted(verdicts) == ["claim1", "claim2", "claim3", "claim4"]
    # a config file of the user's own, outside any package, loads by path too
    (elsewhere / "mine.py").write_text(
        "from manifold_robustness.configs import fonts\nPRESETS = ('small',)\n\n"
        "def get_config(preset):\n    c = fonts.get_config('tiny')\n    c.sizes = (100,)\n    return c\n")
    status = _run([*mr, "experiment", "status", "--config", "mine.py:small", "--results", "mine"], cwd=elsewhere, env=env)
    assert "0 done" in status.stdout and "2 pending of 2 runs" in status.stdout, status.stdout
