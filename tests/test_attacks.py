"""The attack engine: constraint invariants, semantics of both modes, restarts, determinism,
jit/vmap, recompilation, real success rates on a trained CNN, and validation."""

from __future__ import annotations

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from manifold_robustness import attacks, transforms
from manifold_robustness.attacks import engine, objectives, spaces

from conftest import assert_decisions_agree, full_optimisation

# ------------------------------------------------------------------ a tiny model for fast tests


def _linear_model(seed=0, classes=10, shape=(8, 8, 1)):
    w = jax.random.normal(jax.random.key(seed), (int(np.prod(shape)), classes)) * 0.5
    return lambda x: x.reshape(x.shape[0], -1) @ w


def _batch(n=16, shape=(8, 8, 1), seed=1, classes=10):
    x = jax.random.uniform(jax.random.key(seed), (n, *shape))
    return {"image": x, "label": jnp.arange(n, dtype=jnp.int32) % classes}


# ------------------------------------------------------------------ projection invariants


@settings(max_examples=40, deadline=None)
@given(
    eps=st.floats(0.0, 1.0),
    norm=st.sampled_from(["linf", "l2"]),
    scale=st.floats(0.01, 5.0),
    seed=st.integers(0, 2**16),
)
def test_projection_keeps_ball_and_box(eps, norm, scale, seed):
    k1, k2 = jax.random.split(jax.random.key(seed))
    v0 = jax.random.uniform(k1, (4, 5, 5, 1))
    v = v0 + scale * jax.random.normal(k2, v0.shape)
    out = engine.project(v, v0, jnp.full((4,), eps), 0.0, 1.0, norm, rounds=20)
    d = (out - v0).reshape(4, -1)
    size = jnp.abs(d).max(1) if norm == "linf" else jnp.sqrt((d**2).sum(1))
    assert bool(jnp.all(size <= eps + 1e-5))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@settings(max_examples=10, deadline=None)
@given(eps=st.floats(0.0, 0.5), seed=st.integers(0, 1000), mode=st.sampled_from(["eval", "train"]))
def test_attack_outputs_respect_constraints(eps, seed, mode):
    f = _linear_model(seed)
    res = attacks.make("linf", eps=eps, iterations=5, restarts=2, mode=mode)(f, _batch(seed=seed), jax.random.key(seed))
    assert float(res.linf.max()) <= eps + 1e-6
    assert float(res.x.min()) >= 0.0 and float(res.x.max()) <= 1.0


def _compiled(atk, clf):
    """``atk`` on ``clf`` as one program with the variables as an argument: called eagerly, an
    attack compiles each operation outside its loop on its own (~50 programs), once per shape."""
    return jax.jit(lambda v, batch, key, ctx=None: atk(clf.logits_fn(v), batch, key, ctx))


def test_latent_and_theta_stay_in_their_boxes(trained_cnn):
    clf, v, batch, ctx = trained_cnn
    res = _compiled(attacks.make("on_true_manifold", iterations=10, restarts=2, mode="train"), clf)(v, batch, jax.random.key(0), ctx)
    low, high = transforms.FONTS_RANGES["hard"].arrays()
    assert bool(jnp.all(res.v >= low - 1e-6)) and bool(jnp.all(res.v <= high + 1e-6))
    assert float(jnp.abs(res.v - batch["theta"][None]).max()) <= 0.3 + 1e-6
    # a toy linear decoder for the learned-manifold row: z stays in [-2, 2]^d and within η
    dec_w = jax.random.normal(jax.random.key(5), (4, 64))
    decode = lambda ctx_, z, y: jax.nn.sigmoid(z @ ctx_["w"]).reshape(-1, 8, 8, 1)  # noqa: E731
    atk = attacks.make("on_learned_manifold", decode_fn=decode, iterations=8, restarts=2)
    z0 = jnp.clip(jax.random.normal(jax.random.key(6), (16, 4)) * 2, -2, 2)
    res = atk(_linear_model(), {"latent": z0, "label": jnp.arange(16) % 10}, jax.random.key(1), {"w": dec_w})
    assert float(jnp.abs(res.v).max()) <= 2.0 + 1e-6
    assert float(jnp.abs(res.v - z0[None]).max()) <= 0.3 + 1e-6


# ------------------------------------------------------------------ semantics


def test_zero_budget_never_succeeds():
    f, batch = _linear_model(), _batch()
    correct = attacks.correct(f, batch["image"], batch["label"])
    assert int(correct.sum()) > 0
    res = attacks.make("linf", eps=0.0, iterations=10)(f, batch, jax.random.key(0))
    assert float(attacks.success_rate(res.success, correct)) == 0.0
    assert float(res.linf.max()) == 0.0


def test_eval_mode_first_success_is_misclassified_and_frozen():
    f, batch = _linear_model(), _batch(n=32)
    res = attacks.make("linf", eps=0.1, iterations=20, restarts=3)(f, batch, jax.random.key(2))
    assert_decisions_agree(res.success, jax.vmap(f)(res.x), batch["label"])
    assert bool(jnp.all((res.first_success >= 0) == res.success))
    # freezing at the first success makes early exit a pure speed-up: same result without it
    full = attacks.make("linf", eps=0.1, iterations=20, restarts=3, early_exit=False)(f, batch, jax.random.key(2))
    np.testing.assert_allclose(full.x, res.x, atol=1e-6)
    np.testing.assert_array_equal(full.first_success, res.first_success)


def test_frozen_rows_are_skipped_and_the_result_is_the_every_row_loop():
    # 64 examples x 2 restarts = 128 rows.  The model reads each row's class from pixel (0, 0)
    # (which ε = 0.02 keeps): examples 32-63 are misclassified from the start, so after the
    # first evaluation their 64 rows are frozen and, cut into 4 chunks of 32 (frozen rows last),
    # two chunks are never computed again.  A callback counts the rows the classifier sees.
    base = _linear_model(5)
    seen = []

    def f(x):
        jax.debug.callback(lambda n: seen.append(int(n)), x.shape[0])
        cls = jnp.round(jax.lax.stop_gradient(x[:, 0, 0, 0]) * 9).astype(jnp.int32)
        return base(x) * 0.01 + 10.0 * jax.nn.one_hot(cls, 10)

    batch = _batch(n=64, seed=6)
    wrong_class = (batch["label"] + 1) % 10
    cls = jnp.where(jnp.arange(64) < 32, batch["label"], wrong_class)
    batch["image"] = batch["image"].at[:, 0, 0, 0].set(cls / 9)
    iterations = 6
    runs = {}
    for chunks in (1, 4):
        seen.clear()
        atk = attacks.make("linf", eps=0.02, iterations=iterations, restarts=2, early_exit=False, chunks=chunks)
        runs[chunks] = jax.jit(lambda b, k: atk(f, b, k))(batch, jax.random.key(1))  # noqa: B023 (called at once)
        jax.effects_barrier()
        rows = sum(seen) - 2 * 128  # the loop's evaluations, without the final two (every row)
        assert rows == (128 * iterations if chunks == 1 else 128 + 64 * (iterations - 1)), (chunks, seen)
    one, four = runs[1], runs[4]
    np.testing.assert_array_equal(four.success, one.success)
    np.testing.assert_array_equal(four.first_success, one.first_success)
    np.testing.assert_array_equal(one.first_success[:, 32:], 0)  # frozen at the first evaluation
    np.testing.assert_allclose(four.x, one.x, atol=1e-6)  # the moving rows' own steps, either way
    np.testing.assert_allclose(four.loss, one.loss, rtol=1e-5, atol=1e-6)


def test_train_mode_loss_at_least_eval_mode():
    f, batch = _linear_model(3), _batch(n=32, seed=4)
    kw = dict(eps=0.05, iterations=15, restarts=2)
    ev = attacks.make("linf", mode="eval", **kw)(f, batch, jax.random.key(3))
    tr = attacks.make("linf", mode="train", **kw)(f, batch, jax.random.key(3))
    assert bool(jnp.all(tr.loss >= ev.loss - 1e-5))
    assert float(tr.loss.mean()) > float(ev.loss.mean())


def test_more_restarts_never_lower_worst_case_rate():
    # Restart k starts from fold_in(key, k) and rows never interact, so the first r restarts of a
    # run with 4 are a run with r: checked on the images (separately compiled programs, equal up
    # to rounding), after which "more restarts never lower the worst-case rate" holds by
    # construction on the 4-restart run's columns.
    f, batch = _linear_model(2), _batch(n=1024, seed=3)
    correct = attacks.correct(f, batch["image"], batch["label"])
    runs = {}
    for r in (1, 2, 4):
        atk = attacks.make("linf", eps=0.1, iterations=1, restarts=r)
        runs[r] = jax.jit(lambda b, k: atk(f, b, k))(batch, jax.random.key(7))  # noqa: B023 (called at once)
        assert float(attacks.success_rate(runs[r].success, correct)) <= float(
            attacks.worst_case_success_rate(runs[r].success, correct)) + 1e-7
    for r in (1, 2):
        np.testing.assert_allclose(runs[4].x[:r], runs[r].x, atol=1e-5)
        assert_decisions_agree(runs[r].success, jax.vmap(f)(runs[4].x[:r]), batch["label"])
    rates = [float(attacks.worst_case_success_rate(runs[4].success[:r], correct)) for r in (1, 2, 4)]
    # restarts matter here (1 iteration from random starts: 11 / 15 / 22 of 91 correct examples)
    assert rates == sorted(rates) and 0 < rates[0] < 1 and rates[-1] > rates[0]


def test_same_key_same_result_and_jit_equals_no_jit():
    f, batch = _linear_model(), _batch()
    atk = attacks.make("linf", eps=0.1, iterations=6, restarts=2)
    a = atk(f, batch, jax.random.key(9))
    b = atk(f, batch, jax.random.key(9))
    c = jax.jit(lambda bt, k: atk(f, bt, k))(batch, jax.random.key(9))
    for x, y, z in zip(a, b, c):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_allclose(x, z, atol=1e-5)
    d = atk(f, batch, jax.random.key(10))
    assert not np.allclose(a.x, d.x)


def test_vmap_over_eps_equals_loop():
    f, batch = _linear_model(), _batch()
    epsilons = jnp.array([0.0, 0.05, 0.2])

    def at(eps):
        return attacks.make("linf", eps=eps, iterations=5, restarts=2)(f, batch, jax.random.key(1))

    vm = jax.vmap(at)(epsilons)
    for i, e in enumerate(epsilons):
        single = at(float(e))
        np.testing.assert_allclose(vm.x[i], single.x, atol=1e-5)
        np.testing.assert_array_equal(vm.success[i], single.success)
    # ε per example: example 0 gets no budget, the rest 0.2
    per = attacks.make("linf", eps=jnp.where(jnp.arange(16) == 0, 0.0, 0.2), iterations=5)(f, batch, jax.random.key(1))
    assert float(per.linf[:, 0].max()) == 0.0 and float(per.linf[:, 1:].max()) > 0.1


def test_no_recompilation_for_equal_shapes():
    f = _linear_model()
    atk = attacks.make("linf", iterations=4, restarts=2)
    chex.clear_trace_counter()
    fn = jax.jit(chex.assert_max_traces(lambda bt, k: atk(f, bt, k), n=1))
    for s in range(3):
        fn(_batch(seed=s), jax.random.key(s))


def test_nonfinite_gradients_are_masked_per_example():
    base = _linear_model()

    def f(x):  # example 0's logits depend on sqrt at 0 → infinite gradient there
        # Rows are independent (the engine may evaluate them in any grouping): example 0 is the
        # row whose pixel (0, 0) is above 0.5, which the ε = 0.1 ball keeps.
        marked = jax.lax.stop_gradient(x[:, 0, 0, 0] > 0.5)
        bad = jnp.sqrt(jnp.maximum(x.reshape(x.shape[0], -1).sum(1) * 0.0, 0.0) + jnp.where(marked, 0.0, 1.0))
        return base(x).at[:, 0].add(jnp.where(marked, bad, 0.0))

    batch = _batch()
    batch["image"] = batch["image"].at[:, 0, 0, 0].set(0.0).at[0, 0, 0, 0].set(1.0)
    res = attacks.make("linf", eps=0.1, iterations=5, restarts=1, early_exit=False, init="zero")(f, batch, jax.random.key(0))
    assert int(res.nonfinite[0, 0]) > 0 and int(res.nonfinite[0, 1:].sum()) == 0
    assert bool(jnp.all(jnp.isfinite(res.x)))
    clean = attacks.make("linf", eps=0.1, iterations=5, restarts=1, early_exit=False, init="zero")(base, batch, jax.random.key(0))
    np.testing.assert_allclose(res.x[0, 1:], clean.x[0, 1:], atol=1e-6)  # the others are untouched


def test_sign_gradient_and_cw_and_random_baselines():
    f, batch = _linear_model(), _batch()
    correct = attacks.correct(f, batch["image"], batch["label"])
    sign = attacks.make("linf", optimizer="sign", step_size=0.02, iterations=10)(f, batch, jax.random.key(0))
    assert float(attacks.success_rate(sign.success, correct)) > 0.5 and float(sign.linf.max()) <= 0.3 + 1e-6
    cw = attacks.make("cw_l2")(f, batch, jax.random.key(0))
    assert float(attacks.success_rate(cw.success, correct)) > 0.5
    assert float(cw.x.min()) >= 0.0 and float(cw.x.max()) <= 1.0
    rnd = attacks.make("random_image", eps=0.05)(f, batch, jax.random.key(0))
    assert float(rnd.linf.max()) <= 0.05 + 1e-6
    assert int((rnd.first_success > 0).sum()) == 0  # no optimisation: success can only be at iteration 0
    m = objectives.margin(jnp.array([[-3.0, -1.0, -2.0]]), jnp.array([1]))
    np.testing.assert_allclose(m, [1.0])  # true logit masked by -inf, not zeroed


def test_transfer_from_one_model_to_another():
    source, target, batch = _linear_model(0), _linear_model(1), _batch(n=32)
    res = attacks.make("linf", eps=0.2, iterations=10, restarts=2)(source, batch, jax.random.key(0))
    on_target = attacks.transfer(res.x, target, batch["label"])
    assert on_target.shape == (2, 32)
    assert bool(jnp.all(attacks.transfer(res.x, source, batch["label"]) == res.success))  # same model: same outcome
    both = attacks.correct(source, batch["image"], batch["label"]) & attacks.correct(target, batch["image"], batch["label"])
    rate = attacks.transfer_success_rate(on_target, *(attacks.correct(m, batch["image"], batch["label"]) for m in (source, target)))
    np.testing.assert_allclose(rate, attacks.success_rate(on_target, both))


def test_transfer_attack_crafts_on_the_source_and_scores_on_the_target():
    """attacks.Transfer is the source attack (same key: same images) scored by the target, and it
    counts the examples both models classify right; from a model to itself it is the attack."""
    w0 = jax.random.normal(jax.random.key(0), (64, 10))
    ws = {0: w0, 1: w0 + 0.7 * jax.random.normal(jax.random.key(1), (64, 10))}  # related models
    logits = lambda w: (lambda x: x.reshape(x.shape[0], -1) @ w)  # variables -> logits_fn
    batch, key = _batch(n=32), jax.random.key(3)
    # labels: the source's predictions on 24 images, the target's on 8, so the models disagree on some
    pred = {s: jnp.argmax(logits(w)(batch["image"]), -1) for s, w in ws.items()}
    batch["label"] = jnp.where(jnp.arange(32) < 24, pred[0], pred[1]).astype(jnp.int32)
    inner = attacks.make("linf", eps=0.2, iterations=10, restarts=2)
    atk = attacks.Transfer(inner, logits)
    res = jax.jit(lambda b, k, ctx: atk(logits(ws[1]), b, k, ctx))(batch, key, (ws[0], None))
    np.testing.assert_array_equal(res.success, attacks.transfer(res.x, logits(ws[1]), batch["label"]))
    assert bool(jnp.all((res.first_success >= 0) == res.success))
    with jax.disable_jit():  # op by op, both run the same operations: equal by construction
        eager = atk(logits(ws[1]), batch, key, (ws[0], None))
        direct = inner(logits(ws[0]), batch, key)
    np.testing.assert_array_equal(eager.x, direct.x)  # crafted on the source, whatever the target
    counted = atk.counted(logits(ws[1]), batch, (ws[0], None))
    both = attacks.correct(logits(ws[0]), batch["image"], batch["label"]) & attacks.correct(logits(ws[1]), batch["image"], batch["label"])
    np.testing.assert_array_equal(counted, both)
    assert 0 < int(counted.sum()) < int(attacks.correct(logits(ws[1]), batch["image"], batch["label"]).sum())
    itself = jax.jit(lambda b, k, ctx: atk(logits(ws[0]), b, k, ctx))(batch, key, (ws[0], None))
    np.testing.assert_array_equal(itself.success, attacks.transfer(itself.x, logits(ws[0]), batch["label"]))
    assert atk.name == "transfer_linf" and atk.config is inner.config


def test_transfer_rate_counts_only_examples_both_models_get_right():
    success = jnp.array([[True, True, False, True]])
    rate = attacks.transfer_success_rate(success, jnp.array([True, True, True, False]), jnp.array([True, False, True, True]))
    assert float(rate) == 0.5


# ------------------------------------------------------------------ real attacks on a trained CNN


def test_regular_attack_breaks_trained_cnn_on_manifold_attack_less(trained_cnn):
    clf, v, batch, ctx = trained_cnn
    f = clf.logits_fn(v)
    correct = attacks.correct(f, batch["image"], batch["label"])
    with full_optimisation():  # the paper's attacks, 40 iterations x 5 restarts on 200 images
        linf = _compiled(attacks.make("linf"), clf)(v, batch, jax.random.key(0))
        on = attacks.make("on_true_manifold")
        on_res = _compiled(on, clf)(v, batch, jax.random.key(0), ctx)
    rate_linf = float(attacks.success_rate(linf.success, correct))
    on_correct = attacks.correct(f, on.clean(batch, ctx), batch["label"])
    rate_on = float(attacks.success_rate(on_res.success, on_correct))
    assert rate_linf > 0.9
    assert 0.02 < rate_on < rate_linf - 0.1
    # on-manifold examples change the image in image space by rendering, regular ones by ≤ ε per pixel
    assert float(linf.linf.max()) <= 0.3 + 1e-6
    ok = on_res.success & on_correct[None]
    assert float(jnp.where(ok, on_res.linf, 0).max()) > 0.3


# ------------------------------------------------------------------ validation


def test_bad_inputs_raise():
    f, batch = _linear_model(), _batch()
    with pytest.raises(ValueError, match="eps must be >= 0"):
        attacks.make("linf", eps=-0.1)(f, batch, jax.random.key(0))
    with pytest.raises(ValueError, match=r"scalar or have shape \[16\]"):
        attacks.make("linf", eps=jnp.ones(3))(f, batch, jax.random.key(0))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        attacks.make("linf")(f, {**batch, "label": batch["label"] + 5}, jax.random.key(0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        attacks.make("linf")(f, {**batch, "image": batch["image"] + 1.0}, jax.random.key(0))
    with pytest.raises(ValueError, match=r"contains NaN \(1 of"):
        attacks.make("linf")(f, {**batch, "image": batch["image"].at[0, 0, 0, 0].set(jnp.nan)}, jax.random.key(0))
    with pytest.raises(ValueError, match="(?s)known attacks:.*on_true_manifold"):
        attacks.make("fgsm")
    with pytest.raises(ValueError, match="decode_fn"):
        attacks.make("on_learned_manifold")
    with pytest.raises(ValueError, match="mode must be"):
        attacks.make("linf", mode="fast")
    with pytest.raises(ValueError, match=r"chunks must be a whole number >= 1 \(1: every row"):
        attacks.make("linf", chunks=0)
    # per-space helpers
    assert spaces.image_space().name == "image"


def test_rates_of_host_arrays_stay_on_the_host_and_equal_the_device_ones():
    rng = np.random.default_rng(0)
    success, correct = rng.random((3, 50)) < 0.4, rng.random(50) < 0.7
    norms = rng.random((3, 50)).astype(np.float32)
    expected = {attacks.success_rate: (success & correct).sum() / (3 * correct.sum()),
                attacks.worst_case_success_rate: (success.any(0) & correct).sum() / correct.sum()}
    for rate, value in expected.items():
        host = rate(success, correct)
        assert isinstance(host, np.floating)  # no device program for a summary of fetched outcomes
        np.testing.assert_allclose(host, value, rtol=1e-6)
        np.testing.assert_allclose(rate(jnp.asarray(success), jnp.asarray(correct)), value, rtol=1e-6)
    mean = attacks.mean_norm_of_successes(norms, success, correct)
    assert isinstance(mean, np.floating)
    np.testing.assert_allclose(mean, norms[success & correct[None]].mean(), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no success: NaN, quietly, on the host as on the device
        assert np.isnan(attacks.mean_norm_of_successes(norms, np.zeros_like(success), correct))


def test_rows_split_over_devices_are_attacked_without_chunks():
    # On a mesh, gathering the moving rows would move them between devices and every device would
    # compute every chunk; the runner's compiled attack evaluates every row there (no lax.cond).
    from types import SimpleNamespace

    from manifold_robustness import models
    from manifold_robustness.runner import setting

    atk = attacks.make("linf", iterations=2, restarts=2)
    assert atk.with_chunks(1).config.chunks == 1 and atk.config.chunks == engine.AttackConfig.chunks
    assert attacks.Transfer(atk, None).with_chunks(1).source.config.chunks == 1
    clf, variables = models.create("mlp", (8, 8, 1), 10, jax.random.key(0))
    s = SimpleNamespace(compiled={}, classifier=clf)
    batch = _batch(n=64)
    programs = {}
    for spread in (False, True):
        fn = setting._compiled_attack(s, "regular", atk, spread=spread)
        programs[spread] = fn.lower((variables, None), batch, jax.random.key(0)).as_text()
        assert setting._compiled_attack(s, "regular", atk, spread=spread) is fn  # compiled once per layout
    assert "case" in programs[False] and "case" not in programs[True]  # the chunks' conditional
