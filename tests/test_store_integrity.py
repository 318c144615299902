"""The results store keeps its promises: damaged runs are found, named and redone; a refused
config writes nothing; two workers on one root train each group once.  All on one finished
`fonts:tiny` store (MLP, N = 100: two runs), built once and copied per test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from manifold_robustness import cli
from manifold_robustness.runner import config, experiment, store
from manifold_robustness.runner.records import RunKey

OVERRIDES = ["model=mlp", "sizes=100", "distances.methods=()"]
CONFIG = ["--config", "fonts:tiny", *[a for o in OVERRIDES for a in ("-o", o)]]
NORMAL = RunKey("fonts", "normal", 100, 0)
OTHER = RunKey("fonts", "on_true_manifold_at", 100, 0)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished") / "results"
    assert cli.main(["experiment", "run", *CONFIG, "--results", str(root), "--quiet"]) == 0
    return root


@pytest.fixture()
def copy(finished, tmp_path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "copy"))


def _largest(folder: Path) -> Path:
    return max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _flip(path: Path, count: int = 8) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + count] = bytes(b ^ 0xFF for b in data[mid:mid + count])
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "metrics emptied": lambda d: ((d / "metrics.json").write_text(""), d / "metrics.json")[1],
    "result block truncated": lambda d: (_truncate(p := _largest(d / "result")), p)[1],
    "model block truncated": lambda d: (_truncate(p := _largest(d / "model")), p)[1],
    "8 bytes flipped in result": lambda d: (_flip(p := _largest(d / "result")), p)[1],
    "8 bytes flipped in model": lambda d: (_flip(p := _largest(d / "model")), p)[1],
    "model file removed": lambda d: ((p := _largest(d / "model")).unlink(), p)[1],
    "run.json garbage": lambda d: ((d / "run.json").write_text("{not json"), d / "run.json")[1],
}


def _state_files(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


@pytest.mark.parametrize("kind", DAMAGE)
def test_damage_of_each_kind_is_found_and_named(kind, copy, capsys):
    path = DAMAGE[kind](copy / "runs" / NORMAL.name)
    st = store.ResultsStore(copy)
    assert st.status([NORMAL, OTHER]) == {NORMAL: "damaged", OTHER: "done"}
    assert str(path) in st.damage(NORMAL)
    with pytest.raises(store.DamagedRunError, match="redoes it"):
        st.record(NORMAL)
    with pytest.raises(store.DamagedRunError):
        st.load_model(NORMAL)
    assert cli.main(["experiment", "status", *CONFIG, "--results", str(copy)]) == 0
    out = capsys.readouterr().out
    assert f"{NORMAL.name}" in out and "damaged" in out and "1 done, 1 damaged, 0 partial, 0 pending" in out
    assert cli.main(["attack", "--results", str(copy), "--run", NORMAL.name, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and NORMAL.name in err and "damaged" in err


def test_a_damaged_run_is_redone_the_others_untouched_and_the_report_carries_on(finished, copy, capsys):
    _flip(_largest(copy / "runs" / NORMAL.name / "result"))
    other_before = _state_files(copy / "runs" / OTHER.name)

    assert cli.main(["report", "--results", str(copy)]) == 0  # names the damaged run, reports the rest
    err = capsys.readouterr().err
    assert NORMAL.name in err and "leaves it out" in err and "Traceback" not in err
    report = (copy / "report" / "REPORT.md").read_text()
    assert "1 of 2 planned run(s) finished; 1 missing" in report

    assert cli.main(["experiment", "run", *CONFIG, "--results", str(copy), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"{NORMAL.name} is damaged" in out and "1 groups run now, 1 were finished" in out
    assert _state_files(copy / "runs" / OTHER.name) == other_before  # not rewritten
    assert store.ResultsStore(copy).status([NORMAL, OTHER]) == {NORMAL: "done", OTHER: "done"}
    # The redone run is the run that was damaged: same compiled programs on the same machine in
    # this process, so its arrays are bit-identical to the intact original's.
    a, b = store.ResultsStore(finished).record(NORMAL), store.ResultsStore(copy).record(NORMAL)
    assert a.metrics["test_error"] == b.metrics["test_error"] and sorted(a.arrays) == sorted(b.arrays)
    for k, v in a.arrays.items():
        np.testing.assert_array_equal(v, b.arrays[k], err_msg=k)


def test_an_unreadable_experiment_json_is_named_everywhere(copy, capsys):
    (copy / "experiment.json").write_text("garbage")
    for args in (["report", "--results", str(copy)], ["experiment", "status", *CONFIG, "--results", str(copy)],
                 ["experiment", "run", *CONFIG, "--results", str(copy), "--quiet"]):
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "experiment.json" in err and "unreadable" in err, args


def test_a_run_without_a_manifest_is_trusted_as_written_before_manifests(copy):
    path = copy / "runs" / NORMAL.name / "run.json"
    info = json.loads(path.read_text())
    del info["manifest"]
    path.write_text(json.dumps(info))
    assert store.ResultsStore(copy).status([NORMAL])[NORMAL] == "done"
    (copy / "runs" / NORMAL.name / "metrics.json").write_text("")  # found on reading instead
    with pytest.raises(store.DamagedRunError, match="metrics.json"):
        store.ResultsStore(copy).record(NORMAL)


# -- a refused config writes nothing ----------------------------------------------------------

REFUSED = [
    (["-o", "train.epochs=-3"], "epochs must be >= 1"),
    (["-o", "train.batch_size=0"], "batch_size must be >= 1"),
    (["-o", "seeds=a"], "seeds takes int values"),
    (["-o", "seeds=-1"], "every seed in seeds must be a whole number >= 0"),
    (["-o", "sizes=abc"], "sizes takes int values"),
    (["-o", "gallery=-1"], "gallery must be a whole number >= 0"),
    (["-o", "vaegan.examples=-5"], "vaegan.examples must be a whole number >= 0"),
    (["-o", "sizes=20000"], "sizes asks for 20000 train images"),
    (["-o", "adversarial.lr=-1"], "adversarial.lr must be a number > 0"),
    (["--shard", "3/2"], "--shard i/n needs 0 <= i < n"),
    (["--shard", "0/0"], "--shard i/n needs 0 <= i < n"),
    (["--shard", "a/b"], "--shard must look like i/n"),
    (["--shard", "1"], "--shard must look like i/n"),
]


@pytest.mark.parametrize("extra, message", REFUSED)
def test_a_refused_config_leaves_a_new_root_absent(extra, message, tmp_path, capsys):
    root = tmp_path / "new"
    assert cli.main(["experiment", "run", *CONFIG, *extra, "--results", str(root), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not root.exists()


def test_a_refused_config_leaves_an_existing_root_untouched_and_the_fix_runs(copy, capsys):
    before = _state_files(copy)
    for extra, _ in REFUSED:
        assert cli.main(["experiment", "run", *CONFIG, *extra, "--results", str(copy), "--quiet"]) == 2, extra
    assert cli.main(["train", *CONFIG, "--seeds", "a,b", "--results", str(copy), "--quiet"]) == 2
    assert _state_files(copy) == before
    capsys.readouterr()
    assert cli.main(["experiment", "run", *CONFIG, "--results", str(copy), "--quiet"]) == 0
    assert "0 groups run now, 2 were finished" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["-o", "train.epochs=0"], "epochs must be >= 1"),
    (["-o", "train.batch_size=0"], "batch_size must be >= 1"),
    (["-o", "train.epochs=3"], "holds results of another config"),
])
def test_status_refuses_what_run_refuses(extra, message, copy, capsys):
    assert cli.main(["experiment", "status", *CONFIG, *extra, "--results", str(copy)]) == 2
    assert message in capsys.readouterr().err


def test_override_errors_name_the_key():
    c = config.load("fonts:tiny")
    with pytest.raises(ValueError, match="sizes takes int values.*'abc'"):
        config.apply_override(c, "sizes=abc")
    config.apply_override(c, "sizes=100,200")
    assert c.sizes == (100, 200)
    assert experiment.planned_runs(config.check(c))


# -- two workers on one root ------------------------------------------------------------------


def test_two_workers_on_one_root_train_every_group_once(finished, tmp_path):
    """Two `experiment run` processes started together on one root: each group is trained by
    exactly one of them (run.json records the writer), and the store equals a single process's."""
    import os
    import subprocess
    import sys

    import jax

    root = tmp_path / "shared"
    cache_dir = jax.config.jax_compilation_cache_dir  # the tests' persistent cache: fewer compiles
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "1"}
    cmd = [sys.executable, "-m", "manifold_robustness", "experiment", "run", *CONFIG, "--results", str(root), "--quiet"]
    workers = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outs = [w.communicate(timeout=900) for w in workers]
    for w, (out, err) in zip(workers, outs):
        assert w.returncode == 0, err[-3000:]
    trained = [line for out, _ in outs for line in out.splitlines() if line.startswith("[") and "] seeds" in line]
    assert sorted(trained) == sorted(f"[{k.dataset}/{k.method}/n{k.n}] seeds 0" for k in (NORMAL, OTHER))
    writers = {k: json.loads((root / "runs" / k.name / "run.json").read_text())["worker"]["pid"] for k in (NORMAL, OTHER)}
    assert set(writers.values()) <= {w.pid for w in workers}
    assert not (root / "claims").exists() or not list((root / "claims").rglob("*.json"))  # all released
    # The same compiled programs on the same machine as the single-process store: equal bit for bit.
    one, two = store.ResultsStore(finished), store.ResultsStore(root)
    for key in (NORMAL, OTHER):
        a, b = one.record(key), two.record(key)
        assert a.metrics["test_error"] == b.metrics["test_error"] and sorted(a.arrays) == sorted(b.arrays)
        for k, v in a.arrays.items():
            np.testing.assert_array_equal(v, b.arrays[k], err_msg=f"{key.name} {k}")


def test_a_group_claimed_by_a_live_worker_is_left_to_it(copy, capsys):
    from manifold_robustness import claims

    shutil.rmtree(copy / "runs" / NORMAL.name)
    st = store.ResultsStore(copy)
    with claims.claim(st.claim_path("fonts/normal/n100")) as held:  # as another live worker would
        assert held is not None
        counts = experiment.run(config.load("fonts:tiny", OVERRIDES), copy, progress=False)
    assert counts == {"groups": 2, "skipped": 1, "trained": 0, "claimed": 1}
    assert "[fonts/normal/n100] claimed by pid" in capsys.readouterr().out
    assert st.status([NORMAL])[NORMAL] == "pending"


def test_leftovers_older_than_every_live_claim_are_removed(copy):
    import os
    import time

    from manifold_robustness import claims

    run = copy / "runs" / OTHER.name
    old = [run / f".model.{'a' * 32}", run / f".metrics.json.{'b' * 32}.tmp", copy / "train/fonts/normal/n100"]
    old[0].mkdir()
    old[1].write_text("{")
    old[2].mkdir(parents=True)
    for p in (*old, copy / "train/fonts/normal", copy / "train/fonts", copy / "train"):
        os.utime(p, (time.time() - 600, time.time() - 600))
    st = store.ResultsStore(copy)
    with claims.claim(st.claim_path("fonts/x/n1")):  # a live worker, started after the leftovers
        young = run / f".result.{'c' * 32}"  # written by that worker: kept
        young.mkdir()
        os.utime(young, (time.time() + 5, time.time() + 5))
        gone = st.clean_leftovers()
    assert set(old) <= set(gone) and not any(p.exists() for p in old)
    assert young.exists() and (run / "run.json").exists() and st.status([OTHER])[OTHER] == "done"
    assert st.clean_leftovers() == [young]  # no live claim left: everything staged goes
