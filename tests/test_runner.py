"""The experiment runner end to end on the `tiny` FONTS preset (MLP for speed): the CLI path,
sharding, kill-and-resume, status, and the store's refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from manifold_robustness import cli
from manifold_robustness.runner import config, experiment, store
from manifold_robustness.runner.records import RunKey

TINY = ["--config", "fonts:tiny", "-o", "model=mlp"]


def _records(root):
    return {r.key: r for r in store.ResultsStore(root).records()}


def _assert_same(a, b):
    assert sorted(a) == sorted(b)
    for key in a:
        ma, mb = a[key].metrics, b[key].metrics
        assert ma["test_error"] == pytest.approx(mb["test_error"], abs=1e-6), key
        for name in ma["attacks"]:
            assert ma["attacks"][name]["success_rate"] == pytest.approx(mb["attacks"][name]["success_rate"], abs=1e-6)
        assert sorted(a[key].arrays) == sorted(b[key].arrays)
        for k, v in a[key].arrays.items():
            if v.dtype.kind == "f":
                np.testing.assert_allclose(v, b[key].arrays[k], atol=2e-4, err_msg=f"{key.name} {k}")
            else:
                np.testing.assert_array_equal(v, b[key].arrays[k], err_msg=f"{key.name} {k}")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The whole tiny grid (2 N × 2 methods × 1 seed) through the CLI, uninterrupted."""
    root = tmp_path_factory.mktemp("ref") / "results"
    assert cli.main(["experiment", "run", *TINY, "--results", str(root), "--quiet"]) == 0
    return root


def test_cli_runs_the_grid_and_writes_the_report(reference, capsys):
    recs = _records(reference)
    c = config.load("fonts:tiny", ["model=mlp"])
    assert sorted(recs) == sorted(experiment.planned_runs(c))
    for key, rec in recs.items():
        assert 0.0 <= rec.metrics["test_error"] <= 1.0
        assert set(rec.metrics["attacks"]) == {"regular", "on_true"}
        s = rec.metrics["attacks"]["regular"]
        assert s["num_examples"] == c.eval.regular_examples and s["restarts"] == c.eval.restarts
        assert rec.arrays["attacks/regular/success"].shape == (c.eval.restarts, c.eval.regular_examples)
        assert len(rec.metrics["history"]["loss"]) == c.train.epochs
        assert s["worst_case_success_rate"] >= s["success_rate"] - 1e-6
        assert rec.arrays["gallery/clean"].shape == (c.gallery, 28, 28, 1)
    with_distances = [k for k, r in recs.items() if r.metrics["distances"]]
    assert with_distances == [RunKey("fonts", "normal", 200, 0)]  # the config's: normal at the largest N, seed 0
    d = recs[with_distances[0]].metrics["distances"]
    assert d["test"]["count"] == c.distances.examples and d["test"]["mean"] < 0.1  # test images lie on the manifold
    exp = json.loads((reference / "experiment.json").read_text())
    assert exp["config"]["methods"] == ["normal", "on_true_manifold_at"] and "jax" in exp["versions"]
    assert (reference / "runs/fonts/normal/n100/seed0/model").is_dir()
    run = json.loads((reference / "runs/fonts/normal/n100/seed0/run.json").read_text())
    assert run["config"] == exp["config"] and run["versions"]["jax"] and "git_commit" in run
    assert not (reference / "train").exists() or not any((reference / "train").rglob("steps"))  # epoch checkpoints cleaned up

    capsys.readouterr()
    assert cli.main(["report", "--results", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "REPORT.md" in out
    report = reference / "report"
    assert (report / "REPORT.md").exists() and (report / "report.html").exists()
    assert "font faces used of" in (report / "REPORT.md").read_text()  # the FONTS build in words
    verdicts = json.loads((report / "verdicts.json").read_text())
    assert len(verdicts) == 4
    assert all(v["verdict"] in ("holds", "does not hold", "not enough data") for v in verdicts.values())

    # a second run of the finished grid does nothing and says so; status lists everything as done
    assert cli.main(["experiment", "run", *TINY, "--results", str(reference), "--quiet"]) == 0
    assert "0 groups run now, 4 were finished" in capsys.readouterr().out
    assert cli.main(["experiment", "status", *TINY, "--results", str(reference)]) == 0
    assert "4 done, 0 damaged, 0 partial, 0 pending" in capsys.readouterr().out


class _Killed(Exception):
    pass


def test_two_shards_one_killed_and_resumed_equal_one_uninterrupted_run(reference, tmp_path, monkeypatch, capsys):
    """--shard 0/2 + --shard 1/2 (killed after its first epoch checkpoint, then resumed) give the
    same records as the uninterrupted unsharded run."""
    root = tmp_path / "sharded"
    assert cli.main(["experiment", "run", *TINY, "--results", str(root), "--shard", "0/2", "--quiet"]) == 0
    capsys.readouterr()
    cli.main(["experiment", "status", *TINY, "--results", str(root)])
    assert "2 done, 0 damaged, 0 partial, 2 pending" in capsys.readouterr().out

    real_train = experiment.trainer.train

    def dying_train(*args, **kwargs):  # dies after its first epoch has been checkpointed
        def die(epoch, metrics):
            raise _Killed()
        return real_train(*args, **{**kwargs, "callback": die})

    monkeypatch.setattr(experiment.trainer, "train", dying_train)
    with pytest.raises(_Killed):
        cli.main(["experiment", "run", *TINY, "--results", str(root), "--shard", "1/2", "--quiet"])
    c = config.load("fonts:tiny", ["model=mlp"])
    states = experiment.status(c, root)
    assert [states[k] for k in experiment.planned_runs(c)] == ["done", "partial", "done", "pending"]
    monkeypatch.setattr(experiment.trainer, "train", real_train)
    counts = experiment.run(c, root, shard_spec="1/2", progress=False, say=lambda s: None)
    assert counts == {"groups": 2, "skipped": 0, "trained": 2, "claimed": 0}
    _assert_same(_records(root), _records(reference))


def test_a_root_refuses_another_config(reference, capsys):
    assert cli.main(["experiment", "run", *TINY, "-o", "train.epochs=3", "--results", str(reference), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "another config" in err and "train/epochs" in err and "stored 2, requested 3" in err


def test_a_root_written_before_a_setting_existed_reads_its_absence_as_what_it_did(tmp_path):
    older = config.resolved(config.load("fonts:quick"))  # iterations 0: the manifold's own projection
    del older["distances"]["iterations"]
    st = store.ResultsStore(tmp_path).open(older)
    assert st.check_config(config.resolved(config.load("fonts:quick")))["config"] == older
    assert experiment.stored_config(tmp_path).distances.iterations == 0  # what `attack --results` reads
    with pytest.raises(store.ConfigMismatchError, match="distances/iterations: stored 0, requested 20"):
        st.check_config(config.resolved(config.load("fonts:quick", ["distances.iterations=20"])))


@pytest.mark.parametrize("args, message", [
    (["--config", "fontz"], "unknown experiment 'fontz'; known: celeba, emnist, fashion_mnist, fonts"),
    (["--config", "fonts:huge"], "unknown preset 'huge' for fonts; known: paper, quick, tiny"),
    (["--config", "fonts:tiny", "-o", "methods=normal,warp_at"], "unknown method(s) 'warp_at'; known: normal"),
    (["--config", "fonts:tiny", "-o", "trian.epochs=3"], "unknown config key 'trian.epochs'"),
    (["--config", "fonts:tiny", "--shard", "2/2"], "--shard i/n needs 0 <= i < n"),
    (["--config", "fashion_mnist:quick", "-o", "methods=on_true_manifold_at"], "need FONTS' true manifold"),
])
def test_bad_input_is_refused_with_the_known_choices(args, message, tmp_path, capsys):
    assert cli.main(["experiment", "run", *args, "--results", str(tmp_path / "r"), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r" / "runs").exists()


def test_the_inner_attack_settings_reach_adversarial_training():
    """``adversarial.lr`` (None: the attack's own, the paper's) goes with the iterations to every
    inner attack; the quick preset trades 40 steps of 0.005 for 10 of 0.02 (the same reach)."""
    from manifold_robustness import attacks, models
    from manifold_robustness.training import MethodContext, adversarial

    quick = config.load("fonts:quick")
    assert experiment.inner_attack(quick) == {"iterations": 10, "lr": 0.02}
    paper = config.load("fonts:paper")
    assert experiment.inner_attack(paper) == {"iterations": 40} and paper.adversarial.lr is None
    assert experiment.inner_attack(config.load("fonts:quick", ["adversarial.iterations=40", "adversarial.lr=None"])) == \
        experiment.inner_attack(paper)
    clf = models.structure("mlp", (28, 28, 1), 10)
    kwargs = adversarial._attack_kwargs(MethodContext(clf, attack=experiment.inner_attack(quick)))
    assert (kwargs["iterations"], kwargs["lr"], kwargs["mode"]) == (10, 0.02, "train")
    attacks.make("linf", **kwargs)  # the attack takes them


def test_report_on_an_empty_or_missing_store_says_what_is_missing(tmp_path, capsys):
    assert cli.main(["report", "--results", str(tmp_path / "nothing")]) == 2
    assert "no experiment.json" in capsys.readouterr().err
    root = tmp_path / "empty"
    store.ResultsStore(root).open(config.resolved(config.load("fonts:tiny")))
    assert cli.main(["report", "--results", str(root)]) == 0
    verdicts = json.loads((root / "report" / "verdicts.json").read_text())
    assert all(v["verdict"] == "not enough data" for v in verdicts.values())


def test_results_are_saved_atomically(tmp_path):
    """A tree is complete or absent; run.json (the 'finished' mark) is written after everything."""
    st = store.ResultsStore(tmp_path)
    key = RunKey("fonts", "normal", 100, 0)
    arrays = {"attacks/regular/success": np.ones((2, 3), bool), "distances/test/distance": np.zeros(0, np.float32)}
    st.save_run(key, model={"variables": {"w": np.ones(3, np.float32)}}, metrics={"test_error": 0.5}, arrays=arrays, info={})
    rec = st.record(key)
    assert rec.arrays["distances/test/distance"].shape == (0,) and rec.arrays["attacks/regular/success"].all()
    assert st.status([key, RunKey("fonts", "normal", 200, 0)]) == {key: "done", RunKey("fonts", "normal", 200, 0): "pending"}
    assert not [p for p in tmp_path.rglob(".*") if p.name.endswith(".tmp") or p.name.startswith(".result")]
    (st.run_dir(key) / "run.json").unlink()  # as if the process died before the last write
    assert st.status([key])[key] == "partial" and st.records() == []


def test_data_parallel_experiment_on_forced_host_devices(tmp_path):
    """--data-parallel on 2 CPU devices: training and attack batches split over the mesh, runs finish."""
    import subprocess
    import sys

    from conftest import forced_devices_env

    env = forced_devices_env(2)
    root = tmp_path / "dp"
    args = [sys.executable, "-m", "manifold_robustness", "experiment", "run", *TINY, "-o", "methods=normal", "-o", "sizes=100",
            "-o", "distances.methods=()", "--data-parallel", "--results", str(root), "--quiet"]
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "nothing to shard" not in out.stderr  # two devices were there
    rec = store.ResultsStore(root).record(RunKey("fonts", "normal", 100, 0))
    assert 0.0 <= rec.metrics["test_error"] <= 1.0 and rec.arrays["attacks/regular/success"].shape == (2, 20)


def test_learned_manifold_experiment_trains_vaegans_and_attacks_through_them(tmp_path):
    """A config with on-learned-manifold training: the class VAE-GANs are trained once (into the
    results root) on the first 1000 training images, the classifier trains on their decodings, and
    the run has the on-learned attack beside the on-true one (FONTS has both manifolds)."""
    root = tmp_path / "learned"
    c = config.load("fonts:tiny", ["model=mlp", "methods=on_learned_manifold_at", "sizes=100", "distances.methods=()",
                                   "vaegan.epochs=1", "vaegan.channels=8", "vaegan.examples=1000"])
    experiment.run(c, root, progress=False, say=lambda s: None)
    rec = store.ResultsStore(root).record(RunKey("fonts", "on_learned_manifold_at", 100, 0))
    assert set(rec.metrics["attacks"]) == {"regular", "on_true", "on_learned"}
    s = rec.metrics["attacks"]["on_learned"]
    assert s["num_examples"] == c.eval.on_manifold_examples and 0.0 <= s["success_rate"] <= s["worst_case_success_rate"] <= 1.0
    assert rec.arrays["attacks/on_learned/success"].shape == (c.eval.restarts, c.eval.on_manifold_examples)
    assert (root / "vaegan" / "config.json").exists()  # the VAE-GANs' checkpoints live with the results


def test_cli_train_then_attack_a_stored_model(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = "one"  # relative, as the CLI's defaults are
    assert cli.main(["train", *TINY, "--method", "normal", "--n", "100", "--epochs", "1", "--attack-examples", "10",
                     "--results", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "fonts/normal/n100/seed0: test error" in out
    png = tmp_path / "adv.png"
    assert cli.main(["attack", "--results", str(root), "--attack", "on_true_manifold", "--examples", "10",
                     "--iterations", "3", "--restarts", "2", "--out", str(png), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "on_true_manifold (eps 0.3, 3 iterations, 2 restarts) on 10 test images" in out and png.stat().st_size > 1000
    assert cli.main(["attack", "--results", str(root), "--attack", "on_learned_manifold", "--quiet"]) == 2
    assert "needs the experiment's VAE-GANs" in capsys.readouterr().err
    assert cli.main(["attack", "--results", str(root), "--run", "fonts/normal/n999/seed0", "--quiet"]) == 2
    assert "not finished" in capsys.readouterr().err
