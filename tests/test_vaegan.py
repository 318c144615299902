"""Class-specific VAE-GANs: shapes, class routing, one-pass gradients, learning, vmap, resume, bad input,
and a trained model driving on-manifold adversarial training and the on-learned-manifold attack.

Training tests use a narrower model (16, 32, 64 channels instead of 64, 128, 256) so the file stays
fast on 2 CPU cores; the paper's sizes are checked by shape.  All training runs share one dataset
and optimiser settings, so they share two compiled programs (one model; two models side by side).
Tests of generic machinery (routing, gradients, validation) use 8×8 images: two layers per
network, which compile in a fraction of the time.
"""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from manifold_robustness import attacks, data, models, training
from manifold_robustness.manifolds import vaegan, vaegan_losses, vaegan_nets, vaegan_train
from manifold_robustness.models import conv
from manifold_robustness.report import vaegan as report

from conftest import assert_decisions_agree, assert_nearer, full_optimisation


def _cfg(epochs: int, **kw) -> vaegan.VAEGANConfig:
    return vaegan.VAEGANConfig.paper("fonts", channels=16, train=dataclasses.replace(vaegan.VAEGANConfig.train, epochs=epochs), **kw)


TINY = (8, 8, 1)  # conv stack 8 → 4 → 2, decoder 2 → 4 → 8


def _tiny(classes, key=0, **kw):
    # 16 channels like the FONTS runs below: the first layers' parameter shapes (and so the random
    # initialisers XLA compiles for them) are shared
    return vaegan.create(TINY, vaegan.VAEGANConfig(channels=16, **kw), classes, jax.random.key(key))


@pytest.fixture(scope="module")
def fonts(small_fonts):
    """The small FONTS build: train 1000 images per letter, test 200 per letter (new transforms)."""
    return (data.load("fonts", "train", config=small_fonts, dtype=np.uint8),
            data.load("fonts", "test", config=small_fonts, dtype=np.uint8))


@pytest.fixture(scope="module")
def stacked(fonts):
    """Letters A and B trained side by side for 2 epochs (the uninterrupted run of the resume test).
    Fully optimised, as that test trains (the two must be one program): 2 epochs of 2000 images
    repay the compile (2-core AVX2 machine, cold cache: the resume test 13.3 -> 4.5 s, this
    fixture 19 -> 17 s)."""
    with full_optimisation():
        return vaegan_train.train(fonts[0], _cfg(2), classes=[0, 1], seed=3, progress=False)


# --- layers and shapes ----------------------------------------------------------------------------


def test_transposed_conv_layer_follows_pytorch_sizes_and_equals_xla():
    # values and gradients of the patches form are checked in test_models; here the layer's
    # PyTorch-style (kernel, padding, output padding) → lax padding mapping
    for size_in, kernel, pad, out_pad in [((3, 3), 4, 1, (1, 1)), ((7, 6), 4, 1, (0, 0)), ((3, 3), 6, 2, (1, 0))]:
        layer = vaegan_nets.ConvTranspose(5, 3, kernel, pad, out_pad, conv="patches", kernel_init=jax.nn.initializers.normal(1.0),
                                          rngs=nnx.Rngs(params=jax.random.key(0)))
        x = jax.random.normal(jax.random.key(1), (2, *size_in, 5))
        got = nnx.jit(lambda m, x: m(x))(layer, x) - layer.bias[...]
        assert got.shape == (2, 2 * size_in[0] + out_pad[0], 2 * size_in[1] + out_pad[1], 3)  # 2n + output padding
        np.testing.assert_allclose(got, conv.xla_conv_transpose(x, layer.kernel[...], (2, 2), layer.padding), rtol=1e-5, atol=1e-5)


def test_paper_architecture_shapes():
    vae = vaegan.build((28, 28, 1), vaegan.VAEGANConfig(), range(10))
    v = jax.eval_shape(lambda k: vaegan.init_variables(vae, k), jax.random.key(0))
    p = v["params"]
    assert [p["encoder"]["stack"]["convs"][i]["kernel"].shape for i in range(3)] == [(10, 4, 4, 1, 64), (10, 4, 4, 64, 128), (10, 4, 4, 128, 256)]
    assert p["encoder"]["mean"]["kernel"].shape == p["encoder"]["logvar"]["kernel"].shape == (10, 2304, 10)
    assert p["decoder"]["linear"]["kernel"].shape == (10, 10, 3 * 3 * 256)
    assert [p["decoder"]["deconvs"][i]["kernel"].shape for i in range(3)] == [(10, 4, 4, 256, 128), (10, 4, 4, 128, 64), (10, 4, 4, 64, 1)]
    assert p["discriminator"]["fc1"]["kernel"].shape == (10, 2304, 10) and p["discriminator"]["fc2"]["kernel"].shape == (10, 10, 1)
    # per model: convs + BN + heads (encoder), linear + deconvs + BN (decoder), convs + BN + 2 FC (discriminator)
    assert vaegan.count_params(v) == {"encoder": 703_828, "decoder": 682_305, "discriminator": 680_789}
    assert vaegan_nets.decoder_sizes((28, 28, 1)) == [(3, 3), (7, 7), (14, 14), (28, 28)]

    celeba = vaegan.build((56, 48, 3), vaegan.VAEGANConfig.paper("celeba", latent_dim=25), None)
    v = jax.eval_shape(lambda k: vaegan.init_variables(celeba, k), jax.random.key(0))
    assert len(v["params"]["encoder"]["stack"]["convs"]) == 4 and len(v["params"]["decoder"]["deconvs"]) == 4
    assert v["params"]["decoder"]["linear"]["kernel"].shape == (1, 25, 3 * 3 * 512)
    assert vaegan_nets.decoder_sizes((56, 48, 3)) == [(3, 3), (7, 6), (14, 12), (28, 24), (56, 48)]
    out = jax.eval_shape(lambda v, z: vaegan.decode(celeba, v, z), v, jax.ShapeDtypeStruct((4, 25), jnp.float32))
    assert out.shape == (4, 56, 48, 3)


def test_paper_settings():
    emnist = vaegan.VAEGANConfig.paper("emnist")
    assert [emnist.weight(c) for c in range(10)] == [2.75, 5.6, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 2.25, 2.5]
    assert emnist.weight(None) == 3.0 and emnist.train.epochs == 30
    fashion = vaegan.VAEGANConfig.paper("fashion_mnist")
    assert (fashion.weight(3), fashion.weight(None), fashion.train.epochs) == (2.75, 2.75, 60)
    fonts, celeba = vaegan.VAEGANConfig.paper("fonts"), vaegan.VAEGANConfig.paper("celeba")
    assert (fonts.weight(0), fonts.train.epochs, celeba.weight(1), celeba.train.epochs, celeba.latent_dim) == (3.0, 10, 3.0, 30, 10)
    t = fonts.train
    assert (t.learning_rate, t.lr_decay, t.weight_decay, t.batch_size, t.b1, t.b2) == (0.005, 0.9, 1e-4, 100, 0.5, 0.9)


# --- routing --------------------------------------------------------------------------------------


def test_encode_decode_route_each_example_to_its_class_model():
    vae, v = _tiny([2, 5, 7])
    # Make the decoders unmistakable: class 5's output bias pushes every pixel to ~1, class 7's to ~0.
    last = v["params"]["decoder"]["deconvs"][len(v["params"]["decoder"]["deconvs"]) - 1]
    last["bias"] = nnx.Param(last["bias"][...].at[1].set(20.0).at[2].set(-20.0))
    z = vaegan.sample_latents(jax.random.key(1), 6, 10)
    y = jnp.array([5, 7, 2, 5, 7, 2])
    x = vaegan.decode(vae, v, z, y)
    assert float(x[y == 5].min()) > 0.99 and float(x[y == 7].max()) < 0.01
    assert 0.05 < float(x[y == 2].mean()) < 0.95
    assert not np.allclose(vaegan.decode(vae, v, z, jnp.array([2, 2, 2, 2, 2, 2])), x, atol=1e-3)  # the wrong label differs

    images = jax.random.uniform(jax.random.key(2), (6, *TINY))
    mu = vaegan.encode(vae, v, images, y)
    # each example's code is its own class model's: run the encoder of model k alone on everything
    enc = vaegan.net_variables(v, "encoder")
    run_alone = jax.jit(lambda v: models.apply_graph(vae.graph("encoder"), v, images)[0][0])
    alone = [run_alone(jax.tree.map(lambda a: a[k], enc)) for k in range(3)]
    want = jnp.stack(alone)[vaegan.model_index(vae, y), jnp.arange(6)]
    np.testing.assert_allclose(mu, want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(alone[0], alone[1], rtol=0.1, atol=0)  # the class models differ (untrained: tiny codes)
    # the routes are the same function; jit and vmap agree with eager
    np.testing.assert_allclose(vaegan.encode(vae, v, images, y, route="select"), mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vaegan.decode(vae, v, z, y, route="select"), x, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda v, z, y: vaegan.decode(vae, v, z, y))(v, z, y), x, rtol=1e-5, atol=1e-6)
    restarts = jnp.stack([z, -z])
    np.testing.assert_allclose(jax.vmap(lambda zz: vaegan.decode(vae, v, zz, y))(restarts)[1], vaegan.decode(vae, v, -z, y), rtol=1e-5, atol=1e-6)
    grads = jax.grad(lambda zz: vaegan.decode(vae, v, zz, y).sum())(z)  # what the on-manifold attack differentiates
    assert grads.shape == z.shape and bool(jnp.all(jnp.isfinite(grads)))
    assert vaegan.model_index(vae, jnp.array([7, 2, 5])).tolist() == [2, 0, 1]


@pytest.mark.parametrize("counts", [(4, 4, 4), (12, 0, 0), (0, 1, 11), (5, 0, 7), (2, 3, 7)])
def test_sorted_tiles_hold_one_model_each_and_every_row_once(counts):
    # The "sorted" route's plan: each row gets its own slot, every tile a row lands in serves that
    # row's model and is in use, and the static tile count fits any split of the rows.
    idx = np.random.default_rng(sum(counts[:2])).permutation(np.repeat(np.arange(3), counts))
    t, s = vaegan._tiles(idx.size, 3)
    slot, tile_model, used = (np.asarray(a) for a in vaegan._sorted_slots(jnp.asarray(idx, jnp.int32), 3, t, s))
    assert len(set(slot.tolist())) == idx.size and slot.min() >= 0 and slot.max() < s * t
    np.testing.assert_array_equal(tile_model[slot // t], idx)
    assert slot.max() // t < used <= s and used == sum(-(-n // t) for n in counts)
    order = np.argsort(slot)  # rows of one model keep their order inside its tiles
    for k in range(3):
        assert np.all(np.diff(order[idx[order] == k]) > 0)


def test_routes_are_the_same_function():
    vae, v = _tiny([2, 5, 7])
    z = vaegan.sample_latents(jax.random.key(1), 12, 10)
    images = jax.random.uniform(jax.random.key(2), (12, *TINY))
    grad = lambda r, y: jax.grad(lambda zz: jnp.sum(vaegan.decode(vae, v, zz, y, route=r) ** 2))(z)  # noqa: E731
    # Differently compiled programs agree up to float32 rounding of these small networks' sums
    # (~1e-7 relative per operation); a wrong model is off by the outputs' own scale (see above).
    for y in ([5, 7, 2, 5, 7, 2, 2, 2, 2, 2, 7, 5], [7] * 12, [2] * 11 + [5]):
        y = jnp.asarray(y)
        want_x = vaegan.decode(vae, v, z, y, route="gather")
        want_mu = vaegan.encode(vae, v, images, y, route="gather")
        want_g = grad("gather", y)
        for r in ("sorted", "select"):
            np.testing.assert_allclose(vaegan.decode(vae, v, z, y, route=r), want_x, rtol=1e-5, atol=1e-6, err_msg=r)
            np.testing.assert_allclose(vaegan.encode(vae, v, images, y, route=r), want_mu, rtol=1e-4, atol=1e-6,
                                       err_msg=r)
            np.testing.assert_allclose(grad(r, y), want_g, rtol=1e-4, atol=1e-5 * float(jnp.abs(want_g).max()),
                                       err_msg=r)


def test_class_agnostic_model_ignores_labels():
    vae, v = _tiny(None)
    assert vae.num_models == 1 and vae.class_agnostic
    z = vaegan.sample_latents(jax.random.key(1), 4, 10)
    np.testing.assert_array_equal(vaegan.decode(vae, v, z), vaegan.decode(vae, v, z, jnp.array([0, 3, 9, 12])))
    rows, counts = vaegan_train.class_rows(np.array([3, 1, 3, 0]), None)
    assert rows.tolist() == [[0, 1, 2, 3]] and counts.tolist() == [4]
    rows, counts = vaegan_train.class_rows(np.array([3, 1, 3, 0, 3]), [3, 0])
    assert rows.tolist() == [[0, 2, 4], [3, 0, 0]] and counts.tolist() == [3, 1]


def test_samples_lie_in_the_latent_box():
    z = np.asarray(vaegan.sample_latents(jax.random.key(0), 5000, 10))
    assert np.abs(z).max() <= 2.0 and 0.7 < z.std() < 0.9  # N(0, 1) truncated to [-2, 2] has std 0.88


# --- training -------------------------------------------------------------------------------------


def test_three_gradients_from_one_pass_equal_three_separate_losses():
    vae, v = _tiny([0])
    v = jax.tree.map(lambda a: a[0], v)
    x = jax.random.uniform(jax.random.key(1), (8, *TINY))
    eps = jax.random.normal(jax.random.key(2), (8, 10))
    lam = 3.0
    P, S = v["params"], v["batch_stats"]

    def forward(pe, pd, pdis):  # a plain forward pass per loss: what three jax.grad calls would do
        net = lambda n, p, inp: models.apply_graph(vae.graph(n), {"params": p, "batch_stats": S[n]}, inp, train=True)[0]  # noqa: E731
        mu, lv = net("encoder", pe, x)
        xh = net("decoder", pd, mu + jnp.exp(0.5 * lv) * eps)
        return mu, lv, xh, net("discriminator", pdis, x), net("discriminator", pdis, xh)

    @jax.jit
    def separate(w):
        def l_enc(pe):
            mu, lv, xh, _, df = forward(pe, P["decoder"], P["discriminator"])
            return lam * jnp.sum(jnp.abs(x - xh)) + jnp.sum(vaegan_losses.kl_divergence(mu, lv)) - w * jnp.sum(jax.nn.log_sigmoid(df))

        def l_dec(pd):
            _, _, xh, _, df = forward(P["encoder"], pd, P["discriminator"])
            return lam * jnp.sum(jnp.abs(x - xh)) - jnp.sum(jax.nn.log_sigmoid(df))

        def l_dis(pdis):
            _, _, _, dr, df = forward(P["encoder"], P["decoder"], pdis)
            return -jnp.sum(jax.nn.log_sigmoid(dr) + jax.nn.log_sigmoid(-df))

        return {"encoder": jax.grad(l_enc)(P["encoder"]), "decoder": jax.grad(l_dec)(P["decoder"]), "discriminator": jax.grad(l_dis)(P["discriminator"])}

    last_deconv = f"['deconvs'][{len(P['decoder']['deconvs']) - 1}]"
    for w in (0.0, 1.0):  # the paper's encoder loss, and the original code's (with the GAN term)
        grads, _, _ = jax.jit(vaegan_losses.gradients, static_argnums=(0, 5))(vae, v, x, eps, lam, w)
        want = separate(w)
        for net in vaegan.NETS:
            for (path, got), ref in zip(jax.tree_util.tree_leaves_with_path(grads[net]), jax.tree.leaves(want[net])):
                name = jax.tree_util.keystr(path)
                if name.endswith("['bias'].value") and ("['stack']['convs']" in name or "['deconvs']" in name and last_deconv not in name):
                    # conv biases that feed batch norm: the true gradient is 0, both sides are rounding noise
                    assert float(jnp.abs(got).max()) < 1e-2 and float(jnp.abs(ref).max()) < 1e-2, name
                    continue
                np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-4 * float(jnp.abs(ref).max()) + 1e-6, err_msg=f"{w} {net} {name}")
    assert not np.allclose(grads["encoder"]["mean"]["kernel"], jax.jit(vaegan_losses.gradients, static_argnums=(0, 5))(vae, v, x, eps, lam, 0.0)[0]["encoder"]["mean"]["kernel"])


def test_learns_fonts_letters_and_reconstructs_held_out_ones(fonts, tmp_path):
    train, test = fonts
    with full_optimisation():  # 10 epochs: the optimised program's run repays its compile
        result = vaegan_train.train(train, _cfg(10), classes=[0], progress=False)
    assert result.history[-1]["l1"][0] < 0.5 * result.history[0]["l1"][0]
    errors = report.reconstruction_errors(result.vae, result.variables, test, reference=train)
    a = errors["0"]
    assert a["n"] == 200  # the test split: new transforms the model never saw
    # clearly better than the class's mean training image (which scores ~0.134)
    assert a["l1"] < 0.75 * a["mean_image_l1"], a
    assert a["l2"] < a["mean_image_l2"], a
    paths = report.write_quality_report(result.vae, result.variables, test, tmp_path, reference=train, per_class=6)
    assert json.loads(paths["errors"].read_text())["0"]["l1"] == pytest.approx(a["l1"])
    assert paths["samples"].stat().st_size > 1000 and paths["reconstructions"].stat().st_size > 1000


def test_cli_trains_and_writes_the_report(tmp_path, capsys):
    from manifold_robustness import cli

    fonts = ["--num-fonts", "100", "--repetitions", "12", "--test-repetitions", "2"]  # the small_fonts build
    args = ["vaegan", "train", "--dataset", "fonts", "--classes", "0", "--channels", "16", "--epochs", "1", "--quiet", "--out", str(tmp_path), *fonts]
    assert cli.main(args) == 0
    assert "test reconstruction L1" in capsys.readouterr().out
    assert (tmp_path / "samples.png").exists() and (tmp_path / "reconstructions.png").exists()
    assert json.loads((tmp_path / "checkpoints" / "config.json").read_text())["classes"] == [0]
    assert cli.main([*args[:4], "--classes", "A,B"]) == 2
    assert "--classes must be 'all', 'agnostic' or labels" in capsys.readouterr().err


def test_vmapped_class_models_equal_separately_trained_ones(fonts, stacked):
    train, test = fonts
    # Fully optimised as `stacked`, so the two programs differ by the stack alone: against an
    # unoptimised single model the second epoch's KL moved by 17 % of the distance to A's (2-core
    # AVX2 machine); at one optimisation level they agreed to the bit there.
    with full_optimisation():
        alone = vaegan_train.train(train, _cfg(2), classes=[1], seed=3, progress=False)
    # The two runs are differently compiled programs, equal only up to rounding, which Adam
    # amplifies over the steps (on one CPU they agree to the bit, on another KL moved 0.6 %).  What
    # the test must catch is the stack mixing its classes, so the tolerance is the distance to the
    # nearest wrong answer: B's model trained alone must be >= 4x closer to B's stacked model than
    # to A's (A's metrics differ from B's by 4-130 %; rounding moved them 0.03-0.8 %).
    for h_stack, h_alone in zip(stacked.history, alone.history):
        for m in vaegan_train.METRICS:
            assert_nearer(h_stack[m][1], h_alone[m][0], h_stack[m][0], 0.25, m)
    # Compare the functions, not every leaf: conv biases feed batch norm, so their gradient is zero
    # up to rounding and Adam turns that rounding noise (which differs between the vmapped and the
    # single program) into lr-sized steps; the networks' outputs are unaffected.
    probe = jnp.asarray(test.images[test.labels == 1][:50], jnp.float32) / 255.0
    y = jnp.ones(50, jnp.int32)
    # Again measured against the wrong answer, class A's model on the same inputs: 2 epochs of a
    # GAN's Adam carry rounding far (with XLA's older CPU emitters unoptimised the codes moved by 5 %
    # of that distance and the images by 2 %; otherwise they agreed to the bit).
    mu_stack, mu_alone = vaegan.encode(stacked.vae, stacked.variables, probe, y), vaegan.encode(alone.vae, alone.variables, probe, y)
    mu_other = vaegan.encode(stacked.vae, stacked.variables, probe, jnp.zeros(50, jnp.int32))
    assert_nearer(mu_stack, mu_alone, mu_other, 0.25, "codes")
    rec_stack = vaegan.decode(stacked.vae, stacked.variables, mu_alone, y)
    rec_alone = vaegan.decode(alone.vae, alone.variables, mu_alone, y)
    rec_other = vaegan.decode(stacked.vae, stacked.variables, mu_alone, jnp.zeros(50, jnp.int32))  # class A's model
    assert_nearer(rec_stack, rec_alone, rec_other, 0.1, "images")


def test_class_models_stepped_by_lax_map_equal_vmapped_ones():
    vae, v = _tiny([0, 1])
    cfg = vaegan.VAEGANConfig(channels=16)
    images = jax.random.randint(jax.random.key(1), (64, *TINY), 0, 256).astype(jnp.uint8)
    rows = jax.random.randint(jax.random.key(2), (2, 2, 16), 0, 64)  # 2 models × 2 steps × batch 16
    keys, lams = jax.random.split(jax.random.key(3), (2, 2)), jnp.array([3.0, 2.0])
    out = {}
    for way in ("vmap", "map"):
        state = vaegan_train.init_state(cfg, jax.tree.map(jnp.copy, v), 4)
        out[way] = vaegan_train.run_steps(state, images, rows, keys, lams, jnp.int32(2), jnp.int32(4), vae=vae,
                                          step_config=vaegan_train._step_config(cfg), over_models=way)
    # the losses of both steps: the same sums, rounded differently (float32, values ~1)
    for m in vaegan_train.METRICS:
        np.testing.assert_allclose(out["map"][1][m], out["vmap"][1][m], rtol=1e-5, atol=1e-6, err_msg=m)
    # Two Adam steps move an element by about sign(g)·lr each.  Where an element's two gradients
    # nearly cancel, Adam's ratio m/√v magnifies their rounding, so the two programs (compiled
    # differently) may move a few elements differently by up to ~lr: each leaf's update is compared
    # as a whole, by the norm of the difference against the norm of the update (a model swapped or
    # a wrong step is off by O(1); rounding moved 0.7 % of a kernel's update with XLA's
    # optimisations off, JAX_DISABLE_MOST_OPTIMIZATIONS=1, and 4e-6 with them on).  Conv biases
    # that feed batch norm have a true gradient of 0, and Adam turns their rounding noise into
    # lr-sized steps: not compared.
    last_deconv = f"['deconvs'][{len(v['params']['decoder']['deconvs']) - 1}]"
    got, want = out["map"][0]["variables"]["params"], out["vmap"][0]["variables"]["params"]
    for (path, a), b, a0 in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want),
                                jax.tree.leaves(v["params"])):
        name = jax.tree_util.keystr(path)
        feeds_batch_norm = "['convs']" in name or "['deconvs']" in name and last_deconv not in name
        if name.endswith("['bias'].value") and feeds_batch_norm:
            continue
        ratio = float(jnp.linalg.norm((a - b).ravel()) / jnp.linalg.norm((b - a0).ravel()))
        assert ratio <= 5e-2, (name, ratio)
    with pytest.raises(ValueError, match="over_models must be one of"):
        vaegan_train.resolve_over_models("scan")


def test_resume_equals_uninterrupted(fonts, stacked, tmp_path):
    train, _ = fonts

    def kill_after_first_epoch(epoch, metrics):
        if epoch == 0:
            raise KeyboardInterrupt

    seen = []
    with full_optimisation():  # as the uninterrupted run (`stacked`): the same program
        with pytest.raises(KeyboardInterrupt):
            vaegan_train.train(train, _cfg(2), classes=[0, 1], seed=3, checkpoint_dir=tmp_path, progress=False,
                               callback=kill_after_first_epoch)
        resumed = vaegan_train.train(train, _cfg(2), classes=[0, 1], seed=3, checkpoint_dir=tmp_path, progress=False,
                                     callback=lambda e, m: seen.append(e))
    assert seen == [1]  # epoch 0 came from the checkpoint
    assert len(resumed.history) == 2
    np.testing.assert_allclose(resumed.history[0]["l1"], stacked.history[0]["l1"], rtol=1e-6)
    same = jax.tree.map(lambda a, b: bool(np.allclose(a, b, atol=1e-6)), resumed.variables, stacked.variables)
    assert all(jax.tree.leaves(same))
    # a finished run is returned from its checkpoint without training; another config is refused
    again = vaegan_train.train(train, _cfg(2), classes=[0, 1], seed=3, checkpoint_dir=tmp_path, progress=False,
                               callback=lambda e, m: seen.append(e))
    assert seen == [1] and len(again.history) == 2
    with pytest.raises(ValueError, match="reconstruction_weight"):
        vaegan_train.train(train, _cfg(2, reconstruction_weight=2.0), classes=[0, 1], seed=3, checkpoint_dir=tmp_path, progress=False)


# --- plugged into on-manifold training and the attack ---------------------------------------------


def test_latent_codes_and_decoder_fn_bridge():
    vae, v = _tiny([2, 5])
    images = np.random.default_rng(0).integers(0, 256, (7, *TINY), dtype=np.uint8)
    labels = np.array([5, 2, 2, 5, 5, 2, 5])
    want = vaegan.encode(vae, v, jnp.asarray(images, jnp.float32) / 255.0, jnp.asarray(labels))
    codes = vaegan.latent_codes(vae, v, images, labels, batch_size=3)  # chunks 3 + 3 + 1 (padded to 3)
    assert codes.shape == (7, 10)
    np.testing.assert_allclose(codes, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"labels \[7\] have no trained model"):
        vaegan.latent_codes(vae, v, images, np.where(labels == 2, 7, labels), batch_size=3)
    dec = vaegan.decoder_fn(vae)
    assert dec is vaegan.decoder_fn(vaegan.build(TINY, vaegan.VAEGANConfig(channels=16), [2, 5]))  # one object: jit caches hit
    np.testing.assert_array_equal(dec(v, codes, labels), vaegan.decode(vae, v, codes, labels))
    np.testing.assert_allclose(jax.jit(dec)(v, codes, labels), dec(v, codes, labels), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="route must be one of"):
        vaegan.decoder_fn(vae, route="loop")


def _letters(ds, n):
    """The first ``n`` examples of letters A and B (the classes the ``stacked`` models serve)."""
    rows = np.flatnonzero(np.isin(ds.labels, [0, 1]))[:n]
    return dataclasses.replace(ds, images=ds.images[rows], labels=ds.labels[rows], font_ids=ds.font_ids[rows], theta=ds.theta[rows])


@pytest.fixture(scope="module")
def manifold_trained(fonts, stacked):
    """An MLP trained 2 epochs (batch 20) with on_learned_manifold_at through the trained A/B
    VAE-GANs.  With two class models, routing by "select" (both decoders on every example)
    compiles and runs faster than "gather"."""
    train = _letters(fonts[0], 200)
    dec = vaegan.decoder_fn(stacked.vae, route="select")
    codes = vaegan.latent_codes(stacked.vae, stacked.variables, train.images, train.labels, batch_size=100)
    clf = models.create("mlp", (28, 28, 1), 10, jax.random.key(0))[0]
    ctx = training.MethodContext(clf, attack={"iterations": 5}, decode_fn=dec, arrays={"decoder": stacked.variables})
    result = training.train(clf, "on_learned_manifold_at", train, config=training.TrainConfig(epochs=2, batch_size=20),
                            context=ctx, extra_arrays={"latent": codes}, progress=False)
    return clf, result, ctx, train, codes


def test_trained_vaegan_drives_on_learned_manifold_training(manifold_trained, stacked):
    clf, result, ctx, train, codes = manifold_trained
    losses = [float(h["loss"][0]) for h in result.history]
    assert np.all(np.isfinite(losses)) and losses[1] < losses[0], losses
    variables = result.variables_for(0)
    # One batch through the method: 10 clean images + 10 decodings of perturbed latent codes, exactly
    # what the on-learned-manifold attack (train mode, same key) returns for the second half.
    x = jnp.asarray(train.images[:20], jnp.float32) / 255.0
    batch = {"image": x, "label": jnp.asarray(train.labels[:20]), "mask": jnp.ones(20, bool), "latent": codes[:20]}
    key = jax.random.key(7)
    inputs, labels, _ = training.make_builder("on_learned_manifold_at", ctx)(variables, batch, key, ctx.arrays)
    np.testing.assert_array_equal(inputs[:10], x[:10])
    np.testing.assert_array_equal(labels, batch["label"])
    half = {k: a[10:] for k, a in batch.items()}
    atk = attacks.make("on_learned_manifold", decode_fn=ctx.decode_fn, iterations=5, restarts=1, mode="train")
    res = atk(clf.logits_fn(variables), half, key, stacked.variables)
    np.testing.assert_allclose(inputs[10:], res.x[0], atol=1e-6)
    z = res.v[0]
    assert float(jnp.abs(z - half["latent"]).max()) <= 0.3 + 1e-6 and float(jnp.abs(z).max()) <= 2.0 + 1e-6
    assert float(jnp.abs(z - half["latent"]).max()) > 0.05  # the latents moved
    # the images are the VAE-GAN's decodings of those latents (default route: an independent path) ...
    np.testing.assert_allclose(inputs[10:], vaegan.decode(stacked.vae, stacked.variables, z, half["label"]), atol=1e-4)
    # ... and not the reconstructions (a 2-epoch decoder moves little: pixels change by ~0.02)
    recon = vaegan.decode(stacked.vae, stacked.variables, half["latent"], half["label"])
    assert float(jnp.abs(inputs[10:] - recon).max()) > 2e-3


def test_on_learned_manifold_attack_through_trained_vaegan(manifold_trained, fonts, stacked):
    clf, result, ctx, _, _ = manifold_trained
    test = _letters(fonts[1], 50)
    labels = jnp.asarray(test.labels)
    z0 = vaegan.latent_codes(stacked.vae, stacked.variables, test.images, test.labels)
    batch = {"latent": z0, "label": labels}
    trained_fn = clf.logits_fn(result.variables_for(0))
    recon = vaegan.decode(stacked.vae, stacked.variables, z0, labels)
    assert float(attacks.correct(trained_fn, recon, labels).mean()) > 0.9  # the reconstructions are easy to tell apart
    # The 2-epoch decoders change pixels by only ~0.02 within η = 0.3, too little to flip a confident
    # decision; move the decision boundary (a label-independent offset on B's logit) into the
    # reconstructions of A, so that there is something to find.
    logits = trained_fn(recon)
    margin_a = (logits[:, 0] - logits[:, 1])[labels == 0]
    offset = jnp.zeros(10).at[1].set(jnp.quantile(margin_a, 0.5))
    logits_fn = lambda x: trained_fn(x) + offset  # noqa: E731
    atk = attacks.make("on_learned_manifold", decode_fn=ctx.decode_fn, iterations=10, restarts=2)
    res = atk(logits_fn, batch, jax.random.key(1), stacked.variables)
    eta = 0.3
    assert float(jnp.abs(res.v - z0[None]).max()) <= eta + 1e-6 and float(jnp.abs(res.v).max()) <= 2.0 + 1e-6
    for r in range(2):  # the adversarial images are the decodings of the returned latents
        np.testing.assert_allclose(res.x[r], vaegan.decode(stacked.vae, stacked.variables, res.v[r], labels), atol=1e-4)
    # success is judged on those decodings and counted over examples whose reconstruction is right
    assert_decisions_agree(res.success, jax.vmap(logits_fn)(res.x), labels) > 0
    clean = atk.clean(batch, stacked.variables)
    np.testing.assert_allclose(clean, recon, atol=1e-4)
    correct = attacks.correct(logits_fn, clean, labels)
    assert 30 <= int(correct.sum()) < 50  # all of B, about half of A
    rate = float(attacks.success_rate(res.success, correct))
    assert 0.0 < rate < 1.0, rate
    assert not bool(jnp.any(res.success[:, labels == 1]))  # B kept its margin: out of reach


# --- bad input ------------------------------------------------------------------------------------


def test_bad_inputs_raise(fonts):
    vae, v = _tiny([0, 1, 2])
    x = jnp.zeros((4, *TINY), jnp.float32)
    z = jnp.zeros((4, 10), jnp.float32)
    with pytest.raises(ValueError, match=r"labels \[7\] have no trained model; .*classes \[0, 1, 2\]"):
        vaegan.encode(vae, v, x, jnp.array([0, 1, 7, 2]))
    with pytest.raises(ValueError, match="no trained model"):
        vaegan.decode(vae, v, z, jnp.array([0, -1, 1, 2]))
    with pytest.raises(ValueError, match=r"latents must be float32\[batch, 10\].*latent size is 10"):
        vaegan.decode(vae, v, jnp.zeros((4, 9)), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match=r"\[batch, 8, 8, 1\]"):
        vaegan.encode(vae, v, jnp.zeros((4, 28, 28, 1)), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        vaegan.encode(vae, v, jnp.full((4, *TINY), 2.0), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match=r"labels int\[4\]"):
        vaegan.encode(vae, v, x)
    with pytest.raises(ValueError, match=r"labels must be int\[4\]"):
        vaegan.decode(vae, v, z, jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="integers"):
        vaegan.decode(vae, v, z, jnp.zeros(4))
    with pytest.raises(ValueError, match="route must be one of"):
        vaegan.decode(vae, v, z, jnp.zeros(4, jnp.int32), route="loop")
    with pytest.raises(ValueError, match="known: fonts, emnist, fashion_mnist, celeba"):
        vaegan.VAEGANConfig.paper("mnist")
    with pytest.raises(ValueError, match="even"):
        vaegan.build(TINY, vaegan.VAEGANConfig(kernels=(4, 5, 4)), [0])
    with pytest.raises(ValueError, match="distinct labels"):
        vaegan.build((28, 28, 1), _cfg(1), [1, 1])
    train, _ = fonts
    with pytest.raises(ValueError, match=r"classes \[10\] are not labels of fonts"):
        vaegan_train.train(train, _cfg(1), classes=[0, 10], progress=False)
    with pytest.raises(ValueError, match="'all', None"):
        vaegan_train.train(train, _cfg(1), classes="every", progress=False)
    with pytest.raises(ValueError, match="no training images for classes \\[3\\]"):
        vaegan_train.class_rows(np.array([0, 1, 2]), [1, 3])
