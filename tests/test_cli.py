"""The command line's process-wide set-up: where compiled programs are kept between commands."""

from __future__ import annotations

import os
import subprocess
import sys


def _cache_dir(env: dict) -> str:
    code = "from manifold_robustness import cli; print(cli.use_compilation_cache())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def test_commands_keep_compiled_programs_in_the_data_dir_unless_told_otherwise(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["MANIFOLD_ROBUSTNESS_DATA"] = str(tmp_path / "data")
    assert _cache_dir(env) == str(tmp_path / "data" / "jax_cache")
    assert _cache_dir({**env, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "mine")}) == str(tmp_path / "mine")
    # one folder, one spelling: JAX's cache keys hash the folder's name (it rides in the compile
    # options), so `x/../data` and `data` must not become two caches that never share a program
    (tmp_path / "x").mkdir()
    assert _cache_dir({**env, "MANIFOLD_ROBUSTNESS_DATA": str(tmp_path / "x" / ".." / "data")}) == \
        str((tmp_path / "data" / "jax_cache").resolve())
