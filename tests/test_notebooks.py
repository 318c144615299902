"""Execute every notebook in notebooks/ top to bottom with tiny parameters.

Parameters are injected the way papermill does it: the notebook's first cell tagged
``parameters`` holds the defaults, and a cell assigning the tiny values (tagged
``injected-parameters``) is inserted right after it.  The kernel is this interpreter's ipykernel
(a kernelspec written to a temporary folder), so it sees the same installed library, and it gets
``MANIFOLD_ROBUSTNESS_DATA`` of the tests (see conftest.py), so small FONTS builds are shared.

To add a notebook: put it in notebooks/, give its knobs a ``parameters`` cell, and add an entry to
:data:`NOTEBOOKS` (tiny parameters and a check of its printed output).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"


def check_quickstart(text: str) -> None:
    m = re.search(rf"test error: {NUMBER}", text)
    assert m, "no 'test error: ...' line in the output"
    assert 0.0 <= float(m.group(1)) <= 1.0
    for attack in ("regular", "on-manifold"):
        m = re.search(rf"{attack}: (\d+) of (\d+) test images correctly classified; "
                      rf"success rate {NUMBER} \(paper\), worst case {NUMBER}", text)
        assert m, f"no success-rate line for the {attack} attack in the output"
        correct, total = int(m.group(1)), int(m.group(2))
        rate, worst = float(m.group(3)), float(m.group(4))
        assert 0 <= correct <= total == QUICKSTART_TINY["N_ATTACK"]
        # averaging over restarts can never beat "any restart succeeds"
        assert 0.0 <= rate <= worst <= 1.0


QUICKSTART_TINY = {
    # the same small FONTS as conftest's small_fonts fixture, so the tests' cache is reused
    "NUM_FONTS": 100, "REPETITIONS": 12, "TEST_REPETITIONS": 2,
    "N_TRAIN": 500, "N_TEST": 200, "EPOCHS": 2,
    "N_ATTACK": 20, "ATTACK_ITERATIONS": 5, "ATTACK_RESTARTS": 2, "N_SHOW": 4,
}


def claims_store(tmp_path: Path) -> dict:
    """A small results store of synthetic runs (those of test_report.py) for claims.ipynb."""
    from test_report import consistent_store

    from manifold_robustness.runner import config, store

    root = tmp_path / "store"
    results = store.ResultsStore(root).open(config.resolved(config.load("fonts:tiny")))
    for rec in consistent_store(seeds=(0,)):
        results.save_run(rec.key, model={"variables": {"w": np.zeros(2, np.float32)}}, metrics=rec.metrics,
                         arrays=rec.arrays, info={})
    return {"RESULTS": str(root), "RUN_IF_MISSING": False}


def check_claims(text: str) -> None:
    verdicts = dict(re.findall(r"^(claim[1-4]): (holds|does not hold|not enough data)$", text, re.M))
    assert sorted(verdicts) == ["claim1", "claim2", "claim3", "claim4"], text
    assert set(verdicts.values()) == {"holds"}, verdicts  # the synthetic store is built so that all four hold
    assert re.search(r"^done: \d+ run\(s\)", text, re.M) and "pending: " in text
    assert re.search(r"fonts\s+on_true_manifold_at\s+N=\d+\s+seeds 1\s+test error 0\.\d{3}", text)


class Spec(NamedTuple):
    parameters: dict | Callable[[Path], dict]  # or a function of the run's tmp_path (builds inputs)
    check: Callable[[str], None]  # receives the text of every stream and text/plain output
    images: int  # image outputs (figures) the run must produce, at least
    # run as on a fresh Colab runtime: a kernel whose Python has the dependencies but not this
    # package, so the set-up cell installs it (from REPO, a clean copy of this checkout)
    colab: bool = False


NOTEBOOKS: dict[str, Spec] = {
    "quickstart.ipynb": Spec(QUICKSTART_TINY, check_quickstart, images=3, colab=True),
    "claims.ipynb": Spec(claims_store, check_claims, images=4),
}


def _parameters_cell(nb) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            return i
    raise AssertionError("the notebook has no code cell tagged 'parameters'")


def _assigned_names(source: str) -> set[str]:
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def inject_parameters(nb, parameters: dict):
    """Insert a cell assigning ``parameters`` after the ``parameters`` cell (papermill style).
    Every name must be one the parameters cell defines: a typo would otherwise change nothing."""
    i = _parameters_cell(nb)
    unknown = set(parameters) - _assigned_names(nb.cells[i].source)
    assert not unknown, f"not in the notebook's parameters cell: {sorted(unknown)}"
    source = "# Injected by tests/test_notebooks.py\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(i + 1, cell)
    return nb


def _output_text(nb) -> tuple[str, int]:
    texts, images = [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                texts.append(out.data.get("text/plain", ""))
                images += "image/png" in out.data
    return "\n".join(texts), images


def _kernel_manager_factory(kernels: Path, python: str):
    """A function making kernel managers whose only kernelspec runs ipykernel in ``python``."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_file = Path(write_kernel_spec(str(kernels / "python3"))) / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["argv"][0] = python
    spec_file.write_text(json.dumps(spec))
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
    assert ksm.get_kernel_spec("python3").argv[0] == python

    def make():
        return KernelManager(kernel_name="python3", kernel_spec_manager=ksm)

    return make


@pytest.fixture(scope="module")
def kernel_manager(tmp_path_factory):
    """Kernels that run ipykernel in this very interpreter (the library installed)."""
    return _kernel_manager_factory(tmp_path_factory.mktemp("kernels"), sys.executable)


@pytest.fixture(scope="module")
def colab_kernel_manager(tmp_path_factory):
    """Kernels in a fresh virtual environment that, like a Colab runtime, has the dependencies and
    pip (this interpreter's packages, seen through a .pth file; venv's own pip took 5-9 of the
    test's ~40 s), but not manifold_robustness: the notebook's set-up cell must install it."""
    import sysconfig

    root = tmp_path_factory.mktemp("colab")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, capture_output=True)
    python = root / "venv" / "bin" / "python"
    # every installed distribution but this package (its editable finder, .pth and metadata)
    deps = root / "preinstalled"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.suffix != ".pth" and not re.match(r"_*(editable_*)?manifold[_-]robustness", entry.name):
            (deps / entry.name).symlink_to(entry)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "preinstalled.pth").write_text(f"{deps}\n")
    return _kernel_manager_factory(root / "kernels", str(python))


def test_every_notebook_has_tiny_parameters():
    found = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert "quickstart.ipynb" in found
    assert sorted(NOTEBOOKS) == found, "add each notebook in notebooks/ to NOTEBOOKS with tiny parameters"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_notebook_is_clean(name):
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "commit notebooks with outputs cleared"
    params = _assigned_names(nb.cells[_parameters_cell(nb)].source)
    if not callable(NOTEBOOKS[name].parameters):
        assert set(NOTEBOOKS[name].parameters) <= params
    # no machine paths in a notebook that is meant to run anywhere
    assert not re.search(r"/(work|root|home)/", nbformat.writes(nb))


def test_inject_parameters_overrides_defaults():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("x"),
        nbformat.v4.new_code_cell("A = 1\nB = 'b'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(A, B)"),
    ])
    inject_parameters(nb, {"A": 2, "B": "z"})
    assert [c.metadata.get("tags") for c in nb.cells[1:3]] == [["parameters"], ["injected-parameters"]]
    scope: dict = {}
    for cell in nb.cells[1:3]:
        exec(cell.source, scope)
    assert (scope["A"], scope["B"]) == (2, "z")
    with pytest.raises(AssertionError, match="C"):
        inject_parameters(nb, {"C": 3})


def run_notebook(nb, kernel_manager, cwd: Path):
    """Execute ``nb`` in place in a fresh kernel from ``kernel_manager``, working folder ``cwd``,
    with the tests' data cache; raises nbclient's CellExecutionError at the first failing cell."""
    env = dict(os.environ)
    env["MANIFOLD_ROBUSTNESS_DATA"] = str(Path(os.environ["MANIFOLD_ROBUSTNESS_DATA"]).resolve())
    # the tests' persistent compilation cache (conftest.py), so a rerun does not compile again
    env["JAX_COMPILATION_CACHE_DIR"] = str(Path(env["MANIFOLD_ROBUSTNESS_DATA"]) / "jax_cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    client = nbclient.NotebookClient(
        nb, km=kernel_manager(), timeout=300, allow_errors=False,
        # a loaded 2-core machine can deliver a cell's output after nbclient's default 4 s, which
        # it would then drop silently: wait longer, and fail loudly if even that is not enough
        iopub_timeout=60, raise_on_iopub_timeout=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=env)
    return nb


def test_harness_kernel_runs_this_interpreter_and_stops_at_errors(kernel_manager, tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import os, sys\nprint(sys.executable)\nprint(os.environ['MANIFOLD_ROBUSTNESS_DATA'])\nprint(os.getcwd())"),
        nbformat.v4.new_code_cell("raise ZeroDivisionError('boom')"),
        nbformat.v4.new_code_cell("print('never')"),
    ])
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="boom"):
        run_notebook(nb, kernel_manager, tmp_path)
    lines = nb.cells[0].outputs[0].text.splitlines()
    assert Path(lines[0]).resolve() == Path(sys.executable).resolve()
    assert lines[1] == str(Path(os.environ["MANIFOLD_ROBUSTNESS_DATA"]).resolve())
    assert Path(lines[2]).resolve() == tmp_path.resolve()
    assert nb.cells[2].execution_count is None and not nb.cells[2].outputs


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_top_to_bottom(name, request, tmp_path):
    spec = NOTEBOOKS[name]
    parameters = spec.parameters(tmp_path) if callable(spec.parameters) else dict(spec.parameters)
    if spec.colab:
        parameters["REPO"] = str(request.getfixturevalue("clean_checkout"))
    nb = inject_parameters(nbformat.read(NOTEBOOK_DIR / name, as_version=4), parameters)
    # where the library came from: the set-up cell's install (Colab) or this test environment
    nb.cells.append(nbformat.v4.new_code_cell("import manifold_robustness\nprint('package:', manifold_robustness.__file__)"))
    kernels = request.getfixturevalue("colab_kernel_manager" if spec.colab else "kernel_manager")
    run_notebook(nb, kernels, tmp_path)  # raises at the first failing cell
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None
            assert not [o for o in cell.outputs if o.output_type == "error"]
    text, images = _output_text(nb)
    spec.check(text)
    assert images >= spec.images, f"expected at least {spec.images} figures, got {images}"
    package = Path(re.search(r"^package: (.*)$", text, re.M).group(1))
    if spec.colab:  # installed by the set-up cell, not editable: a copy in the kernel's environment
        assert "notebook-setup: manifold_robustness installed from" in text, text
        assert "/venv/" in str(package) and not package.is_relative_to(NOTEBOOK_DIR.parent), package
    else:
        assert "notebook-setup" not in text  # the set-up cell did nothing
