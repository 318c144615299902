"""Clean one-line errors (rc 2) for file-system trouble and bad arguments, at the CLI and at the
library's boundaries."""

from __future__ import annotations

import errno
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_robustness import attacks, cli, models, training
from manifold_robustness.runner import config, experiment, setting, store

TINY = ["--config", "fonts:tiny", "-o", "model=mlp"]


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err
    return err


@pytest.mark.parametrize("under", [False, True])
@pytest.mark.parametrize("command", [
    ["experiment", "run", *TINY, "--quiet"], ["experiment", "status", *TINY], ["report"],
    ["attack", "--quiet"],
])
def test_results_that_is_a_file_or_under_one_is_refused(command, under, tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("mine")
    root = f / "results" if under else f
    assert cli.main([*command, "--results", str(root)]) == 2
    _one_line_error(capsys, "is a file" if not under else "lies under the file", "--results")
    assert f.read_text() == "mine"


def _read_only(monkeypatch, below):
    """Writes under ``below`` fail as on a read-only file system (root ignores chmod)."""
    real = tempfile.NamedTemporaryFile

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(str(below)):
            raise OSError(errno.EROFS, "Read-only file system", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)


def test_a_read_only_results_folder_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    root = tmp_path / "ro"
    _read_only(monkeypatch, root)
    assert cli.main(["experiment", "run", *TINY, "--results", str(root), "--quiet"]) == 2
    _one_line_error(capsys, str(root), "not writable (Read-only file system)", "--results")
    assert not (root / "experiment.json").exists()


def test_a_read_only_report_folder_is_refused(tmp_path, monkeypatch, capsys):
    root = tmp_path / "results"
    store.ResultsStore(root).open(config.resolved(config.load("fonts:tiny")))
    _read_only(monkeypatch, tmp_path / "out")
    assert cli.main(["report", "--results", str(root), "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "not writable (Read-only file system)", "--out")


def test_other_file_system_errors_are_one_line(tmp_path, monkeypatch, capsys):
    root = tmp_path / "results"
    store.ResultsStore(root).open(config.resolved(config.load("fonts:tiny")))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(root / "report" / "REPORT.md"))

    monkeypatch.setattr("manifold_robustness.report.atomic.write_text", full)
    assert cli.main(["report", "--results", str(root)]) == 2
    _one_line_error(capsys, "cannot write", "REPORT.md", "No space left on device")


@pytest.mark.parametrize("flag, value", [("--examples", "0"), ("--restarts", "0"), ("--iterations", "-1")])
def test_attack_counts_are_checked(flag, value, tmp_path, capsys):
    assert cli.main(["attack", "--results", str(tmp_path), flag, value, "--quiet"]) == 2
    _one_line_error(capsys, f"{flag} must be >=")


def test_train_uses_the_configs_attack_examples_and_names_the_flag(tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(experiment, "run", lambda c, root, **kw: seen.append(c))
    assert cli.main(["train", *TINY, "--results", str(tmp_path / "t"), "--quiet"]) == 0
    assert seen[0].eval.regular_examples == seen[0].eval.on_manifold_examples == 20  # tiny's own
    assert cli.main(["train", *TINY, "--attack-examples", "500", "--results", str(tmp_path / "t"), "--quiet"]) == 2
    _one_line_error(capsys, "--attack-examples must lie in [1, 200]", "eval.test_examples")
    assert cli.main(["train", *TINY, "--epochs", "0", "--results", str(tmp_path / "t"), "--quiet"]) == 2
    _one_line_error(capsys, "epochs must be >= 1")
    assert not (tmp_path / "t").exists()


# -- the library's boundaries -------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp():
    clf, variables = models.create("mlp", (28, 28, 1), 10, jax.random.key(0))
    return clf, variables


def _batch(b=2, shape=(28, 28, 1)):
    return {"image": jnp.full((b, *shape), 0.5, jnp.float32), "label": jnp.zeros(b, jnp.int32)}


@pytest.mark.parametrize("shape", [(32, 32, 1), (28, 28, 3)])
def test_images_of_the_wrong_size_name_the_expected_shape(shape, mlp):
    clf, variables = mlp
    with pytest.raises(ValueError, match=r"this mlp takes images float32\[batch, 28, 28, 1\]"):
        attacks.make("linf", iterations=1, restarts=1)(clf.logits_fn(variables), _batch(shape=shape), jax.random.key(0))


def test_attack_inputs_name_what_is_wrong(mlp):
    clf, variables = mlp
    f, key = clf.logits_fn(variables), jax.random.key(0)
    with pytest.raises(ValueError, match=r"dict with 'label'.*got keys \['image'\]"):
        attacks.make("linf")(f, {"image": _batch()["image"]}, key)
    with pytest.raises(ValueError, match=r"reads batch\['theta'\]"):
        attacks.make("on_true_manifold")(f, _batch(), key, {"prototypes": jnp.zeros((1, 10, 28, 28, 1))})
    nan = {**_batch(), "image": _batch()["image"].at[0, 0, 0, 0].set(jnp.nan).at[1, 0, 0, 0].set(0.25)}
    with pytest.raises(ValueError, match=r"contains NaN \(1 of 1568 values\)"):
        attacks.make("linf")(f, nan, key)
    with pytest.raises(ValueError, match="has no setting 'epsilon'; known: .*eps, init, iterations"):
        attacks.make("linf", epsilon=0.1)
    with pytest.raises(ValueError, match="has no setting 'iterations'"):
        attacks.make("random_image", iterations=3)  # a baseline does not optimise
    assert attacks.make("cw_l2", iterations=2, kappa=1.0).config.iterations == 2


def test_training_data_must_be_a_dataset(mlp):
    clf, _ = mlp
    images, labels = np.zeros((10, 28, 28, 1), np.float32), np.zeros(10, np.int32)
    with pytest.raises(TypeError, match=r"must be a data.Dataset .*got tuple"):
        training.train(clf, "normal", (images, labels), progress=False)


# -- checks the compiled programs cannot make happen at their boundary ---------------------------


@pytest.mark.parametrize("bad, message", [("nan", "contains NaN"), ("label", r"labels must lie in \[0, 9\]")])
def test_the_runner_checks_every_chunk_it_attacks(bad, message, mlp):
    c = config.load("fonts:tiny", ["model=mlp", "eval.batch=10"])
    s = setting.load_setting(c)
    images, labels = np.array(s.test.images), np.array(s.test.labels)
    if bad == "nan":
        images[15, 3, 3, 0] = np.nan  # in the second chunk of ten
    else:
        labels[15] = 10
    import dataclasses

    s = dataclasses.replace(s, test=dataclasses.replace(s.test, images=images, labels=labels))
    attack = attacks.make("linf", iterations=1, restarts=1)
    with pytest.raises(ValueError, match=message):
        setting.attack_model(c, s, mlp[1], jax.random.key(0), "regular", attack, 20)


def test_training_refuses_labels_the_decoder_has_no_model_for():
    from manifold_robustness import data
    from manifold_robustness.manifolds import vaegan

    vae, variables = vaegan.create((8, 8, 1), vaegan.VAEGANConfig(channels=16), [0, 1], jax.random.key(0))
    clf, _ = models.create("mlp", (8, 8, 1), 3, jax.random.key(0))
    ds = data.Dataset("toy", "train", np.full((6, 8, 8, 1), 0.5, np.float32), np.array([0, 1, 2] * 2, np.int32), 3)
    ctx = training.MethodContext(clf, decode_fn=vaegan.decoder_fn(vae), arrays={"decoder": variables},
                                 attack={"iterations": 1})
    with pytest.raises(ValueError, match=r"labels \[2\] have no trained model"):
        training.train(clf, "on_learned_manifold_at", ds, context=ctx, config=training.TrainConfig(epochs=1, batch_size=6),
                       extra_arrays={"latent": np.zeros((6, vae.latent_dim), np.float32)}, progress=False)
