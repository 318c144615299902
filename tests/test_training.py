"""The training loop: real learning, seeds under vmap, resume, no retracing, methods, bad input."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_nearer, full_optimisation
from manifold_robustness import data, models, training, transforms
from manifold_robustness.training import loop, methods, trainer


def _clf():
    clf, _ = models.create("cnn", (28, 28, 1), 10, jax.random.key(0))
    return clf


def _close(a, b, atol):
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: bool(np.allclose(x, y, atol=atol)), a, b)))


@pytest.mark.slow
def test_cnn_learns_fonts(small_fonts):
    train = data.load("fonts", "train", limit=5000, config=small_fonts, dtype=np.uint8)
    test = data.load("fonts", "test", limit=2000, config=small_fonts, dtype=np.uint8)
    # 4 epochs on 5000 images: XLA's optimisations repay their compile.  Measured test error 29 %
    # (30 % after 3 epochs; 2-core AVX2 machine, 2026-12-06).
    with full_optimisation():
        result = training.train(_clf(), "normal", train, config=training.TrainConfig(epochs=4), test_data=test,
                                progress=False)
    assert result.history[-1]["loss"][0] < result.history[0]["loss"][0]
    assert result.test["error"][0] < 0.5, result.test  # chance is 0.9


def test_vmapped_seeds_equal_separate_runs(small_fonts):
    train = data.load("fonts", "train", limit=300, config=small_fonts, dtype=np.uint8)
    probe = data.load("fonts", "test", limit=200, config=small_fonts).images
    cfg = training.TrainConfig(epochs=2)
    clf = _clf()
    both = training.train(clf, "normal", train, seeds=[3, 7], config=cfg, progress=False)
    alone = training.train(clf, "normal", train, seeds=[7], config=cfg, progress=False)
    # Each epoch's mean loss, measured against the other seed's (the wrong answer): a vmapped and a
    # single program round differently, and by the second epoch that moved the loss by 3e-4 of
    # the distance between the seeds (4e-5 relative) in one run of the suite on a 2-core AVX2 CPU.
    for h_both, h_alone in zip(both.history, alone.history):
        assert_nearer(h_both["loss"][1], h_alone["loss"][0], h_both["loss"][0], 0.01, "loss")
    # Compare the functions, not every leaf: the conv biases feed batch norm, so their gradient is
    # zero up to rounding and Adam turns that rounding noise into lr-sized steps (vmapped and
    # single convolutions round differently); the network's outputs are unaffected.
    # The tolerance is the distance to the wrong answer, the other seed's model: what the test must
    # catch is seeds mixed or swapped inside the vmap.  (Rounding moved the outputs by 0.1-0.5 % of
    # that distance under the XLA emitters and optimisation levels measured.)
    out_both = clf.logits_fn(both.variables_for(1))(probe)
    out_alone = clf.logits_fn(alone.variables_for(0))(probe)
    out_other = clf.logits_fn(both.variables_for(0))(probe)
    assert_nearer(out_both, out_alone, out_other, 0.05, "logits")
    assert float(jnp.mean(out_both.argmax(-1) == out_alone.argmax(-1))) >= 0.99
    kernels = lambda v: [x for p, x in jax.tree_util.tree_leaves_with_path(v["params"]) if "kernel" in jax.tree_util.keystr(p)]  # noqa: E731
    # Kernels agree up to a small fraction of their norm, not bitwise: a vmapped and a single
    # program round differently and Adam turns near-zero gradients' rounding into lr-sized steps
    # (another CPU or XLA emitter measured 0.1 % of the norm after these 6 steps; 1 % leaves room).
    for a, b in zip(kernels(both.variables_for(1)), kernels(alone.variables_for(0))):
        assert float(jnp.linalg.norm(a - b)) <= 1e-2 * float(jnp.linalg.norm(a))
    assert not np.allclose(clf.logits_fn(both.variables_for(0))(probe), out_alone, atol=1e-2)  # seeds differ


def test_shuffle_of_n_rows_does_not_depend_on_the_capacity():
    key = jax.random.key(4)
    order = loop.shuffle(key, 250, 256)
    assert sorted(np.asarray(order[:250]).tolist()) == list(range(250))  # a permutation of the n rows
    assert sorted(np.asarray(order[250:]).tolist()) == list(range(250, 256))  # then the padding
    np.testing.assert_array_equal(loop.shuffle(key, 250, 4096)[:250], order[:250])
    assert not np.array_equal(loop.shuffle(jax.random.key(5), 250, 256)[:250], order[:250])
    rows, mask = loop.batch_rows(order, 2, 250, 100)  # the last batch wraps around to fill up
    np.testing.assert_array_equal(rows, np.concatenate([order[200:250], order[:50]]))
    assert int(mask.sum()) == 50


def test_one_compiled_epoch_serves_every_n_that_fits_and_never_reads_the_padding():
    clf, _ = models.create("mlp", (28, 28, 1), 10, jax.random.key(0))
    opt = functools.partial(loop.make_optimizer, training.TrainConfig())
    epoch = loop.compile_epoch(clf, opt, methods.make_builder("normal", methods.MethodContext(clf)), 100, max_traces=1)
    r = np.random.default_rng(0)
    images = r.uniform(size=(256, 28, 28, 1)).astype(np.float32)
    images[200:] = np.nan  # any padding row in a batch would make the loss NaN
    batch = {"image": jnp.asarray(images), "label": jnp.asarray(r.integers(0, 10, 256), jnp.int32)}
    state = jax.tree.map(lambda x: x[None], loop.init_state(models.init_variables(clf, jax.random.key(1)), opt(1)))
    for n in (150, 200, 120):  # three N, one trace (max_traces=1 raises on a second)
        state, metrics = epoch(state, batch, jax.random.key(n)[None], None, n)
        assert np.isfinite(float(metrics["loss"][0])), n
    assert int(state["opt_state"][1].count[0]) == 2 + 2 + 2  # Adam took ⌈n / 100⌉ steps each


def test_training_result_does_not_depend_on_the_capacity(small_fonts):
    train = data.load("fonts", "train", limit=250, config=small_fonts, dtype=np.uint8)
    probe = data.load("fonts", "test", limit=200, config=small_fonts).images
    clf, _ = models.create("mlp", (28, 28, 1), 10, jax.random.key(0))
    cfg = training.TrainConfig(epochs=2)
    a = training.train(clf, "normal", train, config=cfg, progress=False, capacity=256)
    b = training.train(clf, "normal", train, config=cfg, progress=False)  # loop.MIN_CAPACITY
    # The same batches in the same order; only the compiled programs differ (the gather's source
    # shape), so the two may round differently: compare the functions to a fraction of their scale.
    out_a, out_b = clf.logits_fn(a.variables_for(0))(probe), clf.logits_fn(b.variables_for(0))(probe)
    assert float(jnp.abs(out_a - out_b).max()) < 1e-3 * float(jnp.abs(out_a).max())
    np.testing.assert_allclose(a.history[-1]["loss"], b.history[-1]["loss"], rtol=1e-4)


def test_train_calls_with_the_same_program_trace_its_epoch_once(small_fonts, monkeypatch):
    traced = []
    real = loop.compile_epoch
    monkeypatch.setattr(loop, "compile_epoch", lambda *a, **kw: traced.append(a[3]) or real(*a, **kw))
    train = data.load("fonts", "train", limit=250, config=small_fonts, dtype=np.uint8)
    clf, _ = models.create("mlp", (28, 28, 1), 10, jax.random.key(0))
    cfg = training.TrainConfig(epochs=2)
    kw = dict(progress=False, capacity=256)
    first = training.train(clf, "normal", train, config=cfg, **kw)
    # another N and number of epochs, a context of the same settings: the same program
    fewer = data.load("fonts", "train", limit=200, config=small_fonts, dtype=np.uint8)
    training.train(clf, "normal", fewer, config=training.TrainConfig(epochs=1), **kw,
                   context=methods.MethodContext(clf, ranges=trainer.default_ranges("fonts")))
    again = training.train(clf, "normal", train, config=cfg, **kw)
    assert len(traced) == 1
    chex.assert_trees_all_equal(first.variables, again.variables)  # the reused epoch trains alike
    # what the program depends on: the optimiser settings, the batch size, the number of seeds,
    # the classifier
    training.train(clf, "normal", train, config=training.TrainConfig(epochs=1, learning_rate=0.02), **kw)
    training.train(clf, "normal", train, config=training.TrainConfig(epochs=1, batch_size=50), **kw)
    training.train(clf, "normal", train, seeds=[0, 1], config=training.TrainConfig(epochs=1), **kw)
    training.train(models.create("mlp", (28, 28, 1), 10, jax.random.key(0))[0], "normal", train, config=cfg, **kw)
    assert traced == [100, 100, 50, 100, 100]
    with pytest.raises(ValueError, match="capacity 100 is below the 250 training examples"):
        training.train(clf, "normal", train, config=cfg, progress=False, capacity=100)


def test_resume_equals_uninterrupted(small_fonts, tmp_path):
    train = data.load("fonts", "train", limit=250, config=small_fonts, dtype=np.uint8)
    cfg = training.TrainConfig(epochs=3)
    full = training.train(_clf(), "augment", train, seeds=[0, 1], config=cfg, checkpoint_dir=tmp_path / "a", progress=False)

    def kill_after_first_epoch(epoch, metrics):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train(_clf(), "augment", train, seeds=[0, 1], config=cfg, checkpoint_dir=tmp_path / "b",
                       progress=False, callback=kill_after_first_epoch)
    seen = []
    resumed = training.train(_clf(), "augment", train, seeds=[0, 1], config=cfg, checkpoint_dir=tmp_path / "b",
                             progress=False, callback=lambda e, m: seen.append(e))
    assert seen == [1, 2]  # epoch 0 came from the checkpoint
    assert _close(full.variables, resumed.variables, atol=1e-6)
    assert len(resumed.history) == 3
    np.testing.assert_allclose(resumed.history[0]["loss"], full.history[0]["loss"], rtol=1e-6)


def test_checkpoints_are_saved_by_time_first_and_last_epochs_always(tmp_path, monkeypatch):
    """Of 6 epochs within one interval only the first and the last are saved; with an interval of
    0 every one is; after the interval has passed the next epoch is saved."""
    from manifold_robustness.training import checkpoints

    clock = [0.0]
    monkeypatch.setattr(checkpoints, "_now", lambda: clock[0])
    state = {"w": np.arange(3, dtype=np.float32)}
    with checkpoints.CheckpointStore(tmp_path / "a", {"x": 1}, max_to_keep=10, interval_s=60) as st:
        saved = [st.save(e, state, last=e == 6) for e in range(1, 7)]
    assert saved == [True, False, False, False, False, True]
    with checkpoints.CheckpointStore(tmp_path / "b", {"x": 1}, max_to_keep=10, interval_s=60) as st:
        saved = []
        for e in range(1, 5):
            clock[0] += 25.0  # an epoch takes 25 s: saves at 1, then once 60 s have passed (epoch 4)
            saved.append(st.save(e, state))
    assert saved == [True, False, False, True]
    with checkpoints.CheckpointStore(tmp_path / "c", {"x": 1}, max_to_keep=10, interval_s=0) as st:
        assert all(st.save(e, state) for e in range(1, 4)) and st.manager.all_steps() == [1, 2, 3]


def test_incompatible_checkpoint_is_refused(small_fonts, tmp_path):
    train = data.load("fonts", "train", limit=200, config=small_fonts, dtype=np.uint8)
    training.train(_clf(), "normal", train, config=training.TrainConfig(epochs=1), checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(training.IncompatibleCheckpointError, match="learning_rate"):
        training.train(_clf(), "normal", train, config=training.TrainConfig(epochs=1, learning_rate=0.1),
                       checkpoint_dir=tmp_path, progress=False)


def test_epoch_does_not_retrace():
    clf = _clf()
    opt = loop.make_optimizer(training.TrainConfig(), 3)
    epoch = loop.make_epoch_fn(clf, opt, methods.make_builder("normal", methods.MethodContext(clf)), 100)
    chex.clear_trace_counter()
    fn = jax.jit(chex.assert_max_traces(epoch, n=1))
    state = loop.init_state(models.init_variables(clf, jax.random.key(0)), opt)
    batch = {"image": jnp.zeros((250, 28, 28, 1), jnp.uint8), "label": jnp.zeros(250, jnp.int32)}
    for e in range(3):
        state, metrics = fn(state, batch, jax.random.key(e))
    assert np.isfinite(float(metrics["loss"]))


def test_learning_rate_schedule_and_coupled_weight_decay():
    cfg = training.TrainConfig()
    opt = loop.make_optimizer(cfg, num_steps_per_epoch=10)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    # zero gradient: the only signal is the L2 term 1e-4·w, passed through Adam (coupled, not AdamW)
    updates, state = opt.update({"w": jnp.zeros(3)}, state, params)
    # first Adam step has magnitude lr·1 (bias-corrected m/√v of a constant gradient), lr = 0.01·0.95
    np.testing.assert_allclose(updates["w"], -0.0095 * np.ones(3), rtol=1e-3)
    expected = [0.0095, 0.01 * 0.95**2, 0.01 * 0.95**2.5, 0.01 * 0.95**3]
    lrs = [float(loop.paper_schedule(cfg, 10)(s)) for s in (0, 10, 15, 20)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)
    # the steps per epoch may be traced (the compiled epoch computes them from N)
    traced = jax.jit(lambda spe, s: loop.paper_schedule(cfg, spe)(s))
    np.testing.assert_allclose([float(traced(10, s)) for s in (0, 10, 15, 20)], expected, rtol=1e-6)


def test_augment_builder_composition():
    clf = _clf()
    ctx = methods.MethodContext(clf, ranges=transforms.FONTS_RANGES["hard"], eta=0.3)
    build = methods.make_builder("augment", ctx)
    images = jax.random.uniform(jax.random.key(0), (10, 28, 28, 1))
    mask = jnp.array([True] * 8 + [False] * 2)
    batch = {"image": images, "label": jnp.arange(10), "mask": mask}
    inputs, labels, weights = build(None, batch, jax.random.key(1), None)
    np.testing.assert_array_equal(inputs[:5], images[:5])  # clean half untouched
    assert not np.allclose(inputs[5:], images[5:])
    np.testing.assert_array_equal(labels, np.arange(10))
    np.testing.assert_allclose(weights, [0.1] * 5 + [1 / 6] * 3 + [0, 0], rtol=1e-6)  # mean of the halves' means
    theta = np.asarray(methods.random_transform_theta(jax.random.key(2), 5000, ctx.ranges, 0.3))
    assert theta[:, 4].min() < 0.78 and theta[:, 4].max() > 1.12  # scale spread around 1 (not the original's min-scale bug)
    assert np.abs(theta - transforms.IDENTITY_THETA).max() <= 0.3 + 1e-6


def test_bad_inputs(small_fonts):
    train = data.load("fonts", "train", limit=100, config=small_fonts)
    with pytest.raises(ValueError, match="(?s)known methods:.*augment"):
        training.train(_clf(), "mixup", train, progress=False)
    wrong = data.Dataset("x", "train", np.zeros((4, 32, 32, 1), np.float32), np.zeros(4, np.int32), 10)
    with pytest.raises(ValueError, match=r"\[N, 28, 28, 1\]"):
        training.train(_clf(), "normal", wrong, progress=False)
    bad = data.Dataset("x", "train", np.full((4, 28, 28, 1), 3.0, np.float32), np.zeros(4, np.int32), 10)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        training.train(_clf(), "normal", bad, progress=False)
    labels = data.Dataset("x", "train", np.zeros((4, 28, 28, 1), np.float32), np.full(4, 12, np.int32), 10)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        training.train(_clf(), "normal", labels, progress=False)
    with pytest.raises(ValueError, match="batch_size must be even"):
        training.TrainConfig(batch_size=99)
    with pytest.raises(ValueError, match="larger than the fonts train split"):
        data.load("fonts", "train", limit=10**7, config=small_fonts)
