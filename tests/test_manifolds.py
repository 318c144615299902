"""The manifold protocol, once over its three implementations (true FONTS, class-specific learned,
class-agnostic learned), on 8×8 images: fields, box, decode of the start, the attack's box, the
distance of an on-manifold point; the refusal of what a dataset cannot serve; the one evaluation
loop over rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_robustness import data, transforms
from manifold_robustness.attacks import evaluate
from manifold_robustness.data import specs
from manifold_robustness.manifolds import measure, objects, protocol, vaegan
from manifold_robustness.runner import config
from manifold_robustness.training import METHODS

SHAPE = (8, 8, 1)
B = 6
RANGES = transforms.FONTS_RANGES["hard"]


def _dataset(images, labels, **extra) -> data.Dataset:
    return data.Dataset("toy", "test", np.asarray(images, np.float32), np.asarray(labels, np.int32), 2, **extra)


def _true():
    k1, k2 = jax.random.split(jax.random.key(0))
    prototypes = jax.random.uniform(k1, (3, 2, *SHAPE))
    theta = transforms.sample_theta(k2, B, RANGES)
    font, label = np.arange(B) % 3, np.arange(B) % 2
    m = objects.TrueFontsManifold(prototypes, RANGES)
    images = np.clip(np.asarray(m.space.decode(theta, {"font_id": font, "label": label}, m.context)), 0, 1)
    return m, _dataset(images, label, font_ids=font.astype(np.int32), theta=np.asarray(theta))


def _learned(classes, cls):
    vae, variables = vaegan.create(SHAPE, vaegan.VAEGANConfig(channels=16, latent_dim=3), classes, jax.random.key(1))
    images = jax.random.uniform(jax.random.key(2), (B, *SHAPE))
    return cls(vae, variables), _dataset(images, np.arange(B) % 2)


@pytest.fixture(scope="module", params=["true", "learned", "agnostic"])
def manifold(request):
    if request.param == "true":
        return _true()
    if request.param == "learned":
        return _learned((0, 1), objects.LearnedManifold)
    return _learned(None, objects.AgnosticManifold)


def _logits(x):  # a fixed linear two-class classifier
    w = jnp.sin(jnp.arange(int(np.prod(SHAPE)) * 2, dtype=jnp.float32)).reshape(-1, 2)
    return x.reshape(x.shape[0], -1) @ w


def _batch(m, ds):
    return {"image": jnp.asarray(ds.images), "label": jnp.asarray(ds.labels), **m.batch_fields(ds)}


def test_protocol_fields_box_and_start(manifold):
    m, ds = manifold
    assert isinstance(m, protocol.Manifold) and m.kind in specs.get("fonts").manifolds
    assert m.attack_key == protocol.KINDS[m.kind].attack_key and m.title == protocol.KINDS[m.kind].title
    fields = m.batch_fields(ds)
    assert tuple(fields) == m.fields and all(v.shape[0] == B for v in fields.values())
    batch = _batch(m, ds)
    v0 = m.space.start(batch, m.context)
    low, high = m.space.box(batch, m.context)
    assert bool(jnp.all(v0 >= low - 1e-6)) and bool(jnp.all(v0 <= high + 1e-6))
    clean = m.attack().clean(batch, m.context)
    np.testing.assert_allclose(np.asarray(m.space.decode(v0, batch, m.context)), np.asarray(clean), atol=1e-6)
    if m.kind == "true":  # the true manifold decodes its start to the test image itself
        np.testing.assert_allclose(np.asarray(clean), ds.images, atol=1e-5)
    else:  # a learned one to the reconstruction
        ref = vaegan.reconstruct(m.vae, m.variables, batch["image"], batch["label"])
        np.testing.assert_allclose(np.asarray(clean), np.asarray(ref), atol=1e-5)


def test_protocol_attacks_stay_in_their_box_and_ball(manifold):
    m, ds = manifold
    batch = _batch(m, ds)
    v0 = m.space.start(batch, m.context)
    low, high = m.space.box(batch, m.context)
    for attack in (m.attack(iterations=3, restarts=2), m.random_baseline(restarts=2)):
        res = jax.jit(lambda b, k: attack(_logits, b, k, m.context))(batch, jax.random.key(3))
        assert res.v.shape == (2, *v0.shape)
        assert bool(jnp.all(res.v >= low - 1e-5)) and bool(jnp.all(res.v <= high + 1e-5))
        assert float(jnp.abs(res.v - v0).max()) <= m.default_eta + 1e-5
        assert res.x.shape == (2, B, *SHAPE)


def test_protocol_on_manifold_points_lie_at_distance_zero(manifold):
    m, ds = manifold
    batch = _batch(m, ds)
    on = m.space.decode(m.space.start(batch, m.context), batch, m.context)
    proj = m.project(jnp.clip(on, 0, 1), batch, jax.random.key(4), m.context)
    assert proj.distance.shape == (B,) and float(proj.distance.max()) < 1e-3
    off = jnp.clip(on + 0.3 * jnp.sign(jnp.sin(jnp.arange(on.size).reshape(on.shape))), 0, 1)
    assert float(m.project(off, batch, jax.random.key(4), m.context).distance.min()) > 0.05


def test_measure_distances_on_any_manifold(manifold):
    m, ds = manifold
    rep = measure.distances(m, _logits, _batch(m, ds), jax.random.key(5), regular=objects.attacks.make("linf", restarts=1,
                            iterations=3), on_manifold=m.attack(iterations=3, restarts=1), chunk=4)
    assert set(rep.summary) == set(measure.GROUPS)
    assert rep.summary["test"]["count"] == B
    assert sorted(rep.arrays()) == sorted(f"distances/{g}/{f}" for g in measure.GROUPS for f in measure.FIELDS)
    if m.kind == "true":
        assert rep.summary["test"]["max"] < 1e-3  # test images lie on the true manifold


def test_a_method_or_attack_the_dataset_cannot_serve_is_refused_naming_its_manifolds():
    with pytest.raises(ValueError, match="training method on_true_manifold_at cannot run on 'emnist'.*learned.*agnostic"):
        config.load("emnist:quick", ["methods=normal,on_true_manifold_at"])
    for name, entry in METHODS.items():  # every method's need is a kind some dataset has
        assert entry.needs is None or entry.needs in protocol.KINDS, name
    assert config.manifolds(config.load("fashion_mnist:quick", ["methods=normal,on_data_manifold_at",
                                                               "vaegan.on_learned=False"])) == ("agnostic",)


def test_over_rows_pads_the_last_chunk_and_folds_keys_per_chunk():
    rows = {"a": np.arange(10, dtype=np.float32), "b": np.arange(20, dtype=np.float32).reshape(10, 2)}
    seen = []

    def fn(params, batch, key):
        seen.append(batch["a"].shape[0])
        noise = jax.random.uniform(key, (3, batch["a"].shape[0]))
        return {"sum": batch["a"] + batch["b"].sum(1) + params, "r": noise}

    out = evaluate.over_rows(fn, 1.0, rows, jax.random.key(0), chunk=4, axes={"r": 1})
    assert seen == [4, 4, 4]  # one shape for every chunk
    np.testing.assert_allclose(out["sum"], rows["a"] + rows["b"].sum(1) + 1.0)
    assert out["r"].shape == (3, 10)
    np.testing.assert_allclose(out["r"][:, 8:], jax.random.uniform(jax.random.fold_in(jax.random.key(0), 2), (3, 4))[:, :2])
    assert evaluate.fitted_chunk(5, 500) == evaluate.MIN_CHUNK and evaluate.fitted_chunk(100, 500) == 128
    assert evaluate.fitted_chunk(1000, 500) == 500 and evaluate.fitted_chunk(5, 16) == 16


@pytest.mark.parametrize("center", ["point", "mean"])
def test_knn_measure_needs_no_decoder(center):
    m, ds = _true()
    train = jax.random.uniform(jax.random.key(6), (40, *SHAPE))
    by = measure.KnnMeasure.fit(train, k=5, center=center, num_components=8)
    rep = measure.distances(m, _logits, _batch(m, ds), jax.random.key(7), regular=objects.attacks.make("linf", restarts=1,
                            iterations=3), on_manifold=m.attack(iterations=3, restarts=1), by=by, chunk=4)
    test = rep.distance["test"]
    assert test.shape == (B,) and (np.all(test == 0) if center == "point" else np.all(test > 0))
    reg = rep.distance["regular"]
    assert np.all(reg <= rep.norm["regular"] + 1e-4)  # a residual is never longer than the perturbation
    assert np.all((rep.angle["regular"] >= 0) & (rep.angle["regular"] <= 90))


@pytest.mark.parametrize("preset, kinds", [("paper", ("true", "learned")), ("quick", ("true",)), ("tiny", ("true",)),
                                           ("learned_quick", ("true", "learned"))])
def test_fonts_paper_preset_trains_and_attacks_on_both_manifolds(preset, kinds):
    """The paper's FONTS grid has on-learned AT and attacks every model on the true and the learned
    manifold (class VAE-GANs with the paper's FONTS settings); the laptop presets stay on the true one."""
    c = config.load(f"fonts:{preset}")
    assert config.manifolds(c) == kinds
    assert ("on_learned_manifold_at" in c.methods) == ("learned" in kinds)
    if "learned" in kinds:
        paper = vaegan.VAEGANConfig.paper("fonts")
        assert c.vaegan.epochs == 0 and (paper.train.epochs, paper.weight(0)) == (10, 3.0)  # 0: the paper's 10 epochs


def test_every_shipped_preset_loads_and_passes_the_checks():
    """Each preset of each shipped config is a valid config (checked in full, as `experiment run`
    would before writing anything); the Fig. 7 presets hold what their docstrings say."""
    import importlib

    for name in config.known_experiments():
        module = importlib.import_module(f"manifold_robustness.configs.{name}")
        for preset in module.PRESETS:
            c = config.load(f"{name}:{preset}")
            assert c.dataset == name, (name, preset)
            if preset == "paper":  # the paper attacks every dataset's models on a manifold
                assert config.manifolds(c), name
    combined = config.load("fonts:combined")
    assert {"combined_true", "combined_learned"} <= set(combined.methods) and len(combined.seeds) == 3
    assert config.manifolds(combined) == ("true", "learned")
    resnet = config.load("fonts:resnet")
    assert resnet.model == "resnet13" and max(resnet.sizes) == 900000 and resnet.train.epochs == 80
    laptop = config.load("fonts:resnet_laptop")
    assert laptop.model == "resnet13" and max(laptop.sizes) <= 2500
