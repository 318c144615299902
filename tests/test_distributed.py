"""Several processes: two local CPU processes on the loopback address, joined by
``jax.distributed`` (cross-process sums through gloo), train and attack a tiny model as one
program and agree with one process; two independent processes split an experiment's grid.

Each subprocess is waited for with a timeout, and on any failure every process of the group is
killed, so a hung collective fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest

from conftest import forced_devices_env
from manifold_robustness import cli, distributed
from manifold_robustness.runner import store
from manifold_robustness.runner.records import RunKey

TINY = ["--config", "fonts:tiny", "-o", "model=mlp"]
TRAIN = ["train", *TINY, "--method", "normal", "--n", "200", "--epochs", "3", "--attack-examples", "20", "--quiet"]
ATTACK = ["attack", "--attack", "linf", "--eps", "0.05", "--examples", "100", "--iterations", "5", "--restarts", "2",
          "--quiet"]
KEY = RunKey("fonts", "normal", 200, 0)
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes(args: list[str], count: int = 2, devices: int = 2, coordinator: bool = True) -> list[str]:
    """Run ``python -m manifold_robustness ARGS`` as processes 0..count-1 (each with ``devices``
    CPU devices) → their stdouts; fails with their stderr when one fails or outlives TIMEOUT_S."""
    where = ["--coordinator", f"127.0.0.1:{_free_port()}"] if coordinator else []
    procs = [subprocess.Popen([sys.executable, "-m", "manifold_robustness", *args, *where, "--num-processes",
                               str(count), "--process-id", str(i)], env=forced_devices_env(devices),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(count)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=TIMEOUT_S))
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"a process of {args[:2]} did not finish in {TIMEOUT_S} s (a hung collective?)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"process {i}: {err[-3000:]}"
    return [out for out, _ in outs]


def _rates(text: str) -> tuple[float, float]:
    m = re.search(r"success rate ([\d.]+) \(paper: over restarts\), worst case ([\d.]+)", text)
    assert m, text
    return float(m.group(1)), float(m.group(2))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The same `train` command in one process (one device) and in two (2 CPU devices each, one
    data mesh over all 4)."""
    root = tmp_path_factory.mktemp("dist")
    assert cli.main([*TRAIN, "--results", str(root / "one")]) == 0
    outs = _processes([*TRAIN, "--data-parallel", "--results", str(root / "two")])
    return root, outs


def test_two_processes_train_one_model_like_one_process(trained):
    root, outs = trained
    assert "models in" in outs[0] and "test error" in outs[0]  # process 0 reports the stored runs ...
    # ... and the other process prints none of the runner's lines (only gloo's C++ ones, which
    # its threads may interleave)
    assert not re.search(r"groups \(|seeds 0|test error|models in", outs[1]), outs[1]
    one, two = (store.ResultsStore(root / r).record(KEY).metrics for r in ("one", "two"))
    assert json.loads((root / "two" / "runs" / KEY.name / "run.json").read_text())["worker"]["pid"]
    # The two programs sum each batch's gradient in a different order (over 4 devices), so their
    # parameters differ by rounding after the first step.  Adam divides each gradient by its own
    # size, so components that are rounding noise (biases batch norm cancels) take lr-sized steps
    # of either sign (tests/test_parallel.py): the trained models differ slightly, and a few test
    # images near a decision boundary may flip.  The first epoch's loss (mostly before any such
    # step) agrees closely; the test error (200 images) within 6 flips.
    assert two["history"]["loss"][0] == pytest.approx(one["history"]["loss"][0], rel=0.03)
    assert abs(two["test_error"] - one["test_error"]) <= 6 / 200
    assert set(two["attacks"]) == set(one["attacks"]) == {"regular", "on_true"}
    assert not (root / "two" / "train").exists() or not any((root / "two" / "train").rglob("steps"))


def test_two_processes_attack_one_model_like_one_process(trained, capsys):
    """The same stored model attacked by one process and by two: the same decisions, up to one."""
    root, _ = trained
    capsys.readouterr()
    assert cli.main([*ATTACK, "--results", str(root / "two")]) == 0
    out = capsys.readouterr().out
    one = _rates(out)
    correct = int(re.search(r"\((\d+) correctly classified\)", out).group(1))
    outs = _processes([*ATTACK, "--data-parallel", "--results", str(root / "two")])
    assert "success rate" not in outs[1]  # process 0 reports
    two = _rates(outs[0])
    assert f"({correct} correctly classified)" in outs[0]  # same weights, same clean decisions
    assert 0 < one[0] < 1  # the comparison is not between two trivial rates
    # Per-example arithmetic is the same whichever device holds an example; only the matrix
    # products' shapes (25 rows per device instead of 100) may round differently, which can flip a
    # decision that sits within rounding of a tie: allow one of the restarts x correct decisions.
    assert two[0] == pytest.approx(one[0], abs=1 / (2 * correct) + 1e-9)
    assert two[1] == pytest.approx(one[1], abs=1 / correct + 1e-9)


def test_independent_processes_split_the_grid(tmp_path, capsys):
    """`experiment run` with --num-processes 2 starts no runtime (its groups never talk): each
    process runs shard process-id/num-processes.  Process 1 of 2, in this process, trains the
    second group only; process 0 then trains the first, so the grid is done, each group once."""
    root = tmp_path / "grid"
    args = ["experiment", "run", *TINY, "-o", "methods=normal", "-o", "sizes=100,200", "-o", "train.epochs=1",
            "-o", "distances.methods=()", "--results", str(root), "--quiet"]
    st = store.ResultsStore(root)
    keys = [RunKey("fonts", "normal", n, 0) for n in (100, 200)]
    for index, done in ((1, {keys[1]}), (0, set(keys))):
        assert cli.main([*args, "--num-processes", "2", "--process-id", str(index)]) == 0
        captured = capsys.readouterr()
        assert f"shard {index}/2" in captured.err and "1 groups (1 runs) in this shard" in captured.out, captured
        assert {k for k, state in st.status(keys).items() if state == "done"} == done


# ------------------------------------------------------------------ refusals (in process, no runtime)


@pytest.mark.parametrize("address", ["localhost", "host:", ":1234", "host:99999", "a b:12", "host:port"])
def test_a_malformed_coordinator_is_refused(address):
    with pytest.raises(ValueError, match="HOST:PORT"):
        distributed.parse_address(address)


def test_addresses():
    assert distributed.parse_address("127.0.0.1:1234") == ("127.0.0.1", 1234)
    assert distributed.parse_address("[::1]:80") == ("[::1]", 80)
    assert distributed.identity() == (0, 1) and distributed.identity(3, 2) == (2, 3)
    assert distributed.initialize() == (0, 1)  # nothing asked: no runtime


@pytest.mark.parametrize("args, message", [
    (["--process-id", "1"], "--process-id needs --num-processes"),
    (["--num-processes", "2"], "--num-processes needs --process-id"),
    (["--num-processes", "2", "--process-id", "2"], "must lie in [0, 1]"),
    (["--num-processes", "2", "--process-id", "1"], "needs --coordinator"),
    (["--coordinator", "127.0.0.1"], "HOST:PORT"),
    (["--coordinator", "127.0.0.1:1234"], "needs --num-processes and --process-id"),
])
def test_bad_process_flags_are_refused_with_the_fix(args, message, tmp_path, capsys):
    assert cli.main([*TRAIN, "--results", str(tmp_path / "r"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_shard_flags_of_experiment_run_are_checked(tmp_path, capsys):
    base = ["experiment", "run", *TINY, "--results", str(tmp_path / "r"), "--quiet"]
    assert cli.main([*base, "--num-processes", "2", "--process-id", "5"]) == 2
    assert "must lie in [0, 1]" in capsys.readouterr().err
    assert cli.main([*base, "--coordinator", "nope"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_distributed_reads_the_shard_from_the_cluster(monkeypatch):
    """--distributed without a cluster says what to pass; under Slurm it reads the task's index."""
    for var in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "PMIX_SERVER_URI", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    try:
        found = distributed.identity(auto=True)
    except ValueError as err:
        assert "--num-processes N --process-id I" in str(err)
    else:
        pytest.skip(f"this machine looks like a cluster to jax ({found})")
    monkeypatch.setenv("SLURM_JOB_ID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "3")
    monkeypatch.setenv("SLURM_PROCID", "2")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "node1")
    monkeypatch.setenv("SLURM_LOCALID", "0")
    assert distributed.identity(auto=True) == (2, 3)
