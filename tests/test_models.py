"""Classifiers: exact parameter counts, the pure boundary, the registry, validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_robustness import models


@pytest.mark.parametrize(
    "name, input_shape, classes, params",
    [
        ("cnn", (28, 28, 1), 10, 100_262),  # 272+32 + 8224+64 + 32832+128 + 57700 + 1010
        ("mlp", (28, 28, 1), 10, 152_330),
        ("resnet13", (28, 28, 1), 10, 2_776_522),
        ("vgg", (28, 28, 1), 10, 15_014_922),
        ("cnn", (56, 48, 3), 2, 196_622),  # CelebA: 4 convs (16..128), 1152 → 20 → 2
    ],
)
def test_parameter_counts(name, input_shape, classes, params):
    clf, variables = models.create(name, input_shape, classes, jax.random.key(0))
    assert models.count_params(variables) == params
    # shapes only (eval_shape): run eagerly, the deep nets' forward passes compiled op by op
    logits = jax.eval_shape(clf.logits_fn(variables), jax.ShapeDtypeStruct((2, *input_shape), jnp.float32))
    assert logits.shape == (2, classes)


def test_cnn_layout_matches_paper():
    clf, v = models.create("cnn", (28, 28, 1), 10, jax.random.key(0))
    p = v["params"]
    assert [p["convs"][i]["kernel"].shape for i in range(3)] == [(4, 4, 1, 16), (4, 4, 16, 32), (4, 4, 32, 64)]
    assert p["fc1"]["kernel"].shape == (576, 100) and p["fc2"]["kernel"].shape == (100, 10)
    # the original's init: std = sqrt(2/3) / sqrt(fan_in)
    k = np.asarray(p["fc1"]["kernel"])
    assert abs(k.std() - np.sqrt(2 / 3) / np.sqrt(576)) < 0.01 * np.sqrt(2 / 3) / np.sqrt(576) * 10


def test_train_and_eval_modes():
    clf, v = models.create("cnn", (28, 28, 1), 10, jax.random.key(1))
    x = jax.random.uniform(jax.random.key(2), (8, 28, 28, 1))
    logits_eval, stats_eval = clf.apply(v, x, train=False)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), stats_eval, v["batch_stats"]))
    _, stats_train = jax.jit(lambda v, x: clf.apply(v, x, train=True))(v, x)  # eagerly: ~50 op programs
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), stats_train, v["batch_stats"]))
    assert all(changed)
    # pure: jit equals eager, and the logits_fn is eval mode
    np.testing.assert_allclose(jax.jit(clf.logits_fn(v))(x), logits_eval, atol=1e-5)
    grads = jax.jit(jax.grad(lambda im: clf.logits_fn(v)(im).sum()))(x)
    assert grads.shape == x.shape and float(jnp.abs(grads).sum()) > 0


def test_registry_and_validation():
    with pytest.raises(ValueError, match="known: cnn, mlp, resnet13, vgg"):
        models.create("lenet", (28, 28, 1), 10, jax.random.key(0))
    with pytest.raises(ValueError, match="height, width, channels"):
        models.create("cnn", (28, 28), 10, jax.random.key(0))
    with pytest.raises(ValueError, match=r"\[batch, 28, 28, 1\]"):
        models.check_images(np.zeros((2, 28, 28), np.float32), (28, 28, 1))
    with pytest.raises(ValueError, match="float32"):
        models.check_images(np.zeros((2, 28, 28, 1), np.uint8), (28, 28, 1))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        models.check_images(np.full((2, 28, 28, 1), 2.0, np.float32), (28, 28, 1))
    models.check_images(np.full((2, 28, 28, 1), 0.5, np.float32), (28, 28, 1))


@pytest.mark.parametrize("name", ["cnn", "resnet13", "vgg"])
def test_conv_switch_computes_the_same_function(name):
    # "patches" (slices + matmul, the CPU default) and "xla" (lax.conv) are one function.
    key = jax.random.key(3)
    clf_p, v = models.create(name, (28, 28, 1), 10, key, conv="patches")
    clf_x, v_x = models.create(name, (28, 28, 1), 10, key, conv="xla")
    assert clf_p.options == (("conv", "patches"),)
    x = jax.random.uniform(jax.random.key(4), (6, 28, 28, 1))
    # jitted: op-by-op dispatch of the deep nets' forward and backward passes took ~1 min
    forward = lambda clf: jax.jit(lambda v, im: clf.apply(v, im, train=True)[0])  # noqa: E731
    np.testing.assert_allclose(forward(clf_p)(v, x), forward(clf_x)(v, x), rtol=1e-4, atol=1e-4)
    # A random weighting of the logits, not their plain sum: with batch norm in train mode the
    # batch sum of the logits is nearly constant, so its gradient would be rounding noise.
    r = jax.random.normal(jax.random.key(5), (6, 10))
    loss = lambda clf: lambda p, im: (clf.apply({"params": p, "batch_stats": v["batch_stats"]}, im, train=True)[0] * r).sum()  # noqa: E731
    gp, gx = jax.jit(jax.grad(loss(clf_p), argnums=(0, 1)))(v["params"], x)
    hp, hx = jax.jit(jax.grad(loss(clf_x), argnums=(0, 1)))(v["params"], x)
    # Gradients pass ReLU masks: a unit that sits at its kink may switch between two convolution
    # algorithms' roundings and move a few entries, so compare whole gradients by their relative
    # norm (a wrong padding, stride or kernel flip is off by O(1); rounding is ~1e-6 per layer, but
    # a switched unit moved 1.25 % of a ResNet batch-norm bias's gradient with XLA's optimisations
    # off, JAX_DISABLE_MOST_OPTIMIZATIONS=1).
    def rel(a, b):
        return float(jnp.linalg.norm((a - b).ravel()) / (jnp.linalg.norm(b.ravel()) + 1e-12))

    assert rel(gx, hx) < 1e-1, rel(gx, hx)
    scale = max(float(jnp.abs(b).max()) for b in jax.tree.leaves(hp))
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(gp), jax.tree.leaves(hp)):
        if float(jnp.abs(b).max()) > 1e-4 * scale:  # not a conv bias feeding batch norm (zero up to rounding)
            assert rel(a, b) < 1e-1, (jax.tree_util.keystr(path), rel(a, b))
    # init_variables keeps the switch
    assert jax.tree.structure(models.init_variables(clf_p, key)) == jax.tree.structure(v)


def test_patch_conv_falls_back_for_unsupported_layouts():
    from jax import lax

    from manifold_robustness.models import conv

    x = jax.random.normal(jax.random.key(0), (2, 9, 9, 4))
    w = jax.random.normal(jax.random.key(1), (3, 3, 4, 5))
    for kwargs in ({"rhs_dilation": (2, 2)}, {"lhs_dilation": (1, 1)}):
        a = conv.patch_conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), **kwargs)
        b = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), **kwargs)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="conv must be one of"):
        conv.resolve("winograd")


@pytest.mark.parametrize(
    "shape, kernel, stride, padding",
    [((2, 28, 28, 3), 4, 2, [(1, 1), (1, 1)]), ((2, 7, 6, 3), 6, 2, [(2, 2), (2, 2)]), ((2, 9, 8, 3), 2, 2, [(0, 1), (1, 0)]),
     ((2, 9, 9, 3), 3, 3, [(0, 0), (1, 1)]), ((2, 7, 7, 3), 3, 2, [(1, 1), (1, 1)])],
)
def test_patch_convs_equal_xla(shape, kernel, stride, padding):
    # strided kernels that are multiples of the stride go through space-to-depth, others through
    # plain patches; transposed convs are the linear transpose of a patch conv
    from jax import lax

    from manifold_robustness.models import conv

    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, shape[-1], 4))
    xla = lambda x, w: lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))  # noqa: E731
    pat = lambda x, w: conv.patch_conv(x, w, (stride, stride), padding)  # noqa: E731
    tpat = lambda x, w: conv.patch_conv_transpose(x, w, (stride, stride), padding)  # noqa: E731
    txla = lambda x, w: conv.xla_conv_transpose(x, w, (stride, stride), padding)  # noqa: E731
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
    value_and_grads = lambda f: jax.jit(lambda x, w: (f(x, w), jax.grad(loss(f), (0, 1))(x, w)))  # noqa: E731
    for ours, ref in ((pat, xla), (tpat, txla)):
        (y, grads), (y_ref, grads_ref) = value_and_grads(ours)(x, w), value_and_grads(ref)(x, w)
        np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
        for a, b in zip(grads, grads_ref):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="conv must be one of"):
        conv.resolve_transpose("fast")


def test_initializers_draw_the_documented_distribution_with_and_without_jit():
    """Kernels are N(0, scale / fan_in) (fan_in: every axis but the last) and N(0, σ²), one
    program per power-of-two size: the same key gives the same weights eagerly and under jit
    (up to rounding), another key other weights."""
    from manifold_robustness.models import initializers

    key = jax.random.key(3)
    init = initializers.scaled_normal(2.0 / 3.0)
    w = np.asarray(init(key, (3, 3, 64, 100)))
    assert w.shape == (3, 3, 64, 100) and w.dtype == np.float32
    expected = np.sqrt(2.0 / 3.0 / (3 * 3 * 64))
    assert abs(w.std() / expected - 1) < 0.02 and abs(w.mean()) < 0.05 * expected  # 57 600 draws
    np.testing.assert_allclose(jax.jit(init, static_argnums=1)(key, (3, 3, 64, 100)), w, rtol=1e-6, atol=1e-7)
    assert not np.allclose(init(jax.random.key(4), (3, 3, 64, 100)), w)
    small = np.asarray(initializers.normal(0.001)(key, (700, 30)))  # 21 000 of a 32 768 block
    assert abs(small.std() / 0.001 - 1) < 0.03
    assert initializers.block_size(21_000) == 32_768 and initializers.block_size(1) == 1


def test_structure_is_create_without_weights():
    clf, v = models.create("cnn", (28, 28, 1), 10, jax.random.key(0))
    bare = models.structure("cnn", (28, 28, 1), 10)
    assert bare.graphdef == clf.graphdef  # the same graph: it runs the stored weights
    assert (bare.name, bare.input_shape, bare.num_classes, bare.options) == (clf.name, clf.input_shape, clf.num_classes, ())
    x = jax.random.uniform(jax.random.key(1), (2, 28, 28, 1))
    np.testing.assert_array_equal(bare.logits_fn(v)(x), clf.logits_fn(v)(x))
    assert models.structure("cnn", (28, 28, 1), 10, conv="xla").options == (("conv", "xla"),)
