"""Class-specific VAE-GANs: shapes, class routing, bad input.

The paper's sizes are checked by shape only.  Tests of generic machinery (routing, validation) use
8×8 images: two layers per network, which compile in a fraction of the time.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from manifold_robustness import models
from manifold_robustness.manifolds import vaegan, vaegan_nets
from manifold_robustness.models import conv


def _cfg(epochs: int, **kw) -> vaegan.VAEGANConfig:
    return vaegan.VAEGANConfig.paper("fonts", channels=16, train=dataclasses.replace(vaegan.VAEGANConfig.train, epochs=epochs), **kw)


TINY = (8, 8, 1)  # conv stack 8 → 4 → 2, decoder 2 → 4 → 8


def _tiny(classes, key=0, **kw):
    return vaegan.create(TINY, vaegan.VAEGANConfig(channels=8, **kw), classes, jax.random.key(key))


# --- layers and shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize("size_in, kernel, pad, out_pad", [((3, 3), 4, 1, (1, 1)), ((14, 14), 4, 1, (0, 0)), ((7, 6), 4, 1, (0, 0)), ((3, 3), 6, 2, (1, 0))])
def test_transposed_conv_patches_equals_xla(size_in, kernel, pad, out_pad):
    rngs = nnx.Rngs(params=jax.random.key(0))
    layer = vaegan_nets.ConvTranspose(5, 3, kernel, pad, out_pad, conv="patches", kernel_init=jax.nn.initializers.normal(1.0), rngs=rngs)
    x = jax.random.normal(jax.random.key(1), (2, *size_in, 5))
    w = layer.kernel[...]
    want = conv.xla_conv_transpose(x, w, (2, 2), layer.padding)
    got = layer(x) - layer.bias[...]
    assert got.shape == (2, 2 * size_in[0] + out_pad[0], 2 * size_in[1] + out_pad[1], 3)  # PyTorch's size rule
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    loss = lambda fn: lambda w, x: jnp.sum(jnp.sin(fn(x, w, (2, 2), layer.padding)))  # noqa: E731
    for a, b in zip(jax.grad(loss(conv.patch_conv_transpose), (0, 1))(w, x), jax.grad(loss(conv.xla_conv_transpose), (0, 1))(w, x)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


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
    # both routes are the same function; jit and vmap agree with eager
    np.testing.assert_allclose(vaegan.encode(vae, v, images, y, route="select"), mu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vaegan.decode(vae, v, z, y, route="select"), x, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(jax.jit(lambda v, z, y: vaegan.decode(vae, v, z, y))(v, z, y), x, rtol=1e-5, atol=1e-6)
    restarts = jnp.stack([z, -z])
    np.testing.assert_allclose(jax.vmap(lambda zz: vaegan.decode(vae, v, zz, y))(restarts)[1], vaegan.decode(vae, v, -z, y), rtol=1e-5, atol=1e-6)
    grads = jax.grad(lambda zz: vaegan.decode(vae, v, zz, y).sum())(z)  # what the on-manifold attack differentiates
    assert grads.shape == z.shape and bool(jnp.all(jnp.isfinite(grads)))
    assert vaegan.model_index(vae, jnp.array([7, 2, 5])).tolist() == [2, 0, 1]


def test_class_agnostic_model_ignores_labels():
    vae, v = _tiny(None)
    assert vae.num_models == 1 and vae.class_agnostic
    z = vaegan.sample_latents(jax.random.key(1), 4, 10)
    np.testing.assert_array_equal(vaegan.decode(vae, v, z), vaegan.decode(vae, v, z, jnp.array([0, 3, 9, 12])))


def test_samples_lie_in_the_latent_box():
    z = np.asarray(vaegan.sample_latents(jax.random.key(0), 5000, 10))
    assert np.abs(z).max() <= 2.0 and 0.7 < z.std() < 0.9  # N(0, 1) truncated to [-2, 2] has std 0.88


# --- bad input ------------------------------------------------------------------------------------


def test_bad_inputs_raise():
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
