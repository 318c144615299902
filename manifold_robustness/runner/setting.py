"""What the runs of one config share, and how a model is attacked and measured in it (shell code).

>>> s = setting.prepare(cfg, store)                    # data, classifier, the config's manifolds
>>> for name, e in setting.eval_attacks(cfg, s).items():
...     out = setting.attack_model(cfg, s, variables, key, name, e.attack, e.count, e.manifold, context=e.context)

A :class:`Setting` holds the splits, the classifier and the manifolds the config needs
(:func:`manifold_robustness.runner.config.manifolds`), each with the per-example fields it reads
for the training and test splits.  Nothing here names a dataset or a manifold: what differs is in
the dataset's spec (:mod:`manifold_robustness.data.specs`) and the manifold objects
(:mod:`manifold_robustness.manifolds.objects`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from manifold_robustness import attacks, claims, data, models, parallel
from manifold_robustness.attacks import evaluate
from manifold_robustness.data import specs
from manifold_robustness.manifolds import measure, objects, protocol
from manifold_robustness.runner import config as config_lib
from manifold_robustness.runner import records
from manifold_robustness.runner.store import ResultsStore

REGULAR = records.REGULAR_KEYS["linf"]  # the key of the paper's regular (image-space) attack's results


@dataclasses.dataclass
class Setting:
    """Everything the runs of one config share: data, classifier, manifolds (kind → object, in the
    dataset's order), each manifold's per-example fields per split, compiled attacks and the
    source models of transfer attacks."""

    spec: specs.DatasetSpec
    train: data.Dataset
    test: data.Dataset
    classifier: models.Classifier
    ranges: Any
    manifolds: dict[str, Any] = dataclasses.field(default_factory=dict)
    fields: dict[str, dict[str, dict[str, np.ndarray]]] = dataclasses.field(default_factory=dict)  # kind → split → f
    compiled: dict = dataclasses.field(default_factory=dict)
    sources: dict[str, Any] = dataclasses.field(default_factory=dict)  # source models (variables), their data

    def manifold(self, kind: str | None, what: str):
        """The manifold ``kind`` of this setting (None → None); refused, naming the dataset's
        manifolds, when the dataset lacks it or the config did not prepare it."""
        if kind is None:
            return None
        protocol.require(kind, self.spec.manifolds, self.spec.name, what)
        if kind not in self.manifolds:
            raise ValueError(f"{what} needs the experiment's {objects.KINDS[kind].missing_hint}; this experiment "
                             f"prepared: {', '.join(self.manifolds) or 'no manifold'}")
        return self.manifolds[kind]

    def knn_measure(self, center: str):
        """The k-NN local subspace measure over this setting's training images (indexed once)."""
        key = ("knn", center)
        if key not in self.compiled:
            n = len(self.train)
            self.compiled[key] = measure.KnnMeasure.fit(self.train.images, k=min(KNN_NEIGHBOURS, n), center=center,
                                                        num_components=min(KNN_COMPONENTS, n))
        return self.compiled[key]

    def rows(self, split: str, kinds, stop: int, start: int = 0) -> dict[str, np.ndarray]:
        """``image``, ``label`` and the fields of the manifolds ``kinds`` for rows [start, stop)."""
        ds = self.train if split == "train" else self.test
        out = {"image": np.asarray(ds.images[start:stop], np.float32), "label": np.asarray(ds.labels[start:stop], np.int32)}
        for kind in kinds:
            out.update({k: v[start:stop] for k, v in self.fields[kind][split].items()})
        return out


def _say(text: str) -> None:
    print(text, flush=True)


def prepare(c, store: ResultsStore, progress: bool = True, say: Callable[[str], None] = _say) -> Setting:
    """Load the data and build the config's manifolds (training or resuming VAE-GANs in the store)
    and the source models of its transfer attacks."""
    return add_sources(c, add_manifolds(c, load_setting(c), store, progress, say), store, progress, say)


def load_setting(c) -> Setting:
    """The data and classifier of a config, checked against it; no manifolds yet, and nothing is
    written to the results root."""
    spec = specs.get(c.dataset)
    largest = max(int(n) for n in c.sizes)
    options = c.data.to_dict()

    def load(split, limit, key):
        try:
            return spec.load(split, limit, options)
        except ValueError as err:
            raise ValueError(f"{key} asks for {limit} {split} images: {err}") from None

    train = load("train", largest, "sizes")
    test = load("test", int(c.eval.test_examples), "eval.test_examples")
    if train.images.shape[0] < largest:
        raise ValueError(f"{c.dataset} has only {train.images.shape[0]} training images; sizes ask for up to {largest}")
    if test.images.shape[0] < max(c.eval.regular_examples, c.eval.on_manifold_examples):
        raise ValueError(f"{c.dataset} has only {test.images.shape[0]} test images; eval asks for more")
    clf = models.structure(c.model, train.images.shape[1:], train.num_classes)  # weights: per seed, or the store's
    s = Setting(spec, train, test, clf, spec.ranges(options))
    if "transfer" in c.eval.attacks:  # the transfer source's training images (add_sources)
        n = int(c.eval.transfer.examples)
        s.sources["transfer_train"] = load("train", n, "eval.transfer.examples")
        if len(s.sources["transfer_train"].labels) < n:
            raise ValueError(f"eval.transfer.examples asks for {n} training images; {c.dataset} has "
                             f"{len(s.sources['transfer_train'].labels)}: lower eval.transfer.examples")
    return s


def add_manifolds(c, s: Setting, store: ResultsStore, progress: bool = True,
                  say: Callable[[str], None] = _say) -> Setting:
    """Build the config's manifolds into ``s`` (in place; returns it).  Each is built under a claim
    on the results root, so of several workers one trains a manifold's VAE-GANs and the others
    then load them."""
    options = c.data.to_dict()
    setup = objects.Setup(c.dataset, s.ranges, prototypes=s.spec.prototypes(options),
                          full_train=lambda limit=None: s.spec.load("train", limit, options, dtype=np.uint8),
                          vaegan=c.vaegan.to_dict(), root=store.root, progress=progress, say=say)
    for kind in config_lib.manifolds(c):
        with claims.wait(store.claim_path(f"manifold-{kind}"), say=say):
            m = objects.KINDS[kind].build(setup)
        s.manifolds[kind] = m
        s.fields[kind] = {"train": m.batch_fields(s.train), "test": m.batch_fields(s.test)}
    return s


def train_config(c):
    from manifold_robustness.training import TrainConfig

    return TrainConfig(**{k: c.train[k] for k in c.train.keys()})


TRANSFER_SOURCE = "transfer_source"  # its folder under the results root


def add_sources(c, s: Setting, store: ResultsStore, progress: bool = True,
                say: Callable[[str], None] = _say) -> Setting:
    """The source model of the config's transfer attack, into ``s.sources`` (in place; returns
    ``s``): normally trained on the first ``eval.transfer.examples`` training images for
    ``eval.transfer.epochs`` epochs with seed ``eval.transfer.seed`` (none of the grid's), once per
    results root — its last epoch's checkpoint stays in ``<root>/transfer_source`` and later runs
    (and other workers, after waiting on its claim) load it from there."""
    from manifold_robustness.training import trainer

    if "transfer" not in c.eval.attacks:
        return s
    t = c.eval.transfer
    n, train = int(t.examples), s.sources["transfer_train"]
    cfg = dataclasses.replace(train_config(c), epochs=int(t.epochs))
    folder = store.root / TRANSFER_SOURCE
    with claims.wait(store.claim_path("transfer-source"), say=say):
        say(f"transfer source: a normally trained {s.classifier.name} on {n} training images, {cfg.epochs} epochs, "
            f"seed {int(t.seed)} (checkpoint in {folder})")
        result = trainer.train(s.classifier, "normal", train, seeds=(int(t.seed),), config=cfg, checkpoint_dir=str(folder),
                               run_config={"dataset": c.dataset, "data": config_lib.resolved(c)["data"], "role": "transfer source"},
                               progress=progress)
    s.sources["transfer"] = result.variables_for(0)
    return s


# -- attacks ------------------------------------------------------------------------------------


class EvalAttack(NamedTuple):
    """One evaluation attack of a setting: the attack, how many test images it attacks, the
    manifold whose fields it reads (None: image space) and its context (the manifold's, or a
    transfer attack's source model beside it)."""

    attack: Any
    count: int
    manifold: Any = None
    context: Any = None


def _linf(c):
    return attacks.make("linf", eps=float(c.eval.eps), iterations=int(c.eval.iterations), restarts=int(c.eval.restarts))


# The image-space attacks a config may choose (``eval.attacks``): name -> the attack, from the
# config and the setting.  L2 PGD takes its paper ε (1.5) from the registry and the config's
# iterations and restarts; C&W keeps all of its paper settings (120 iterations, one restart);
# transfer crafts the paper L∞ attack on the experiment's source model (:func:`add_sources`).
# Each result is stored under ``records.REGULAR_KEYS[name]``.
REGULAR_ATTACKS: dict[str, Callable[[Any, "Setting"], EvalAttack]] = {
    "linf": lambda c, s: EvalAttack(_linf(c), int(c.eval.regular_examples)),
    "l2": lambda c, s: EvalAttack(attacks.make("l2", iterations=int(c.eval.iterations), restarts=int(c.eval.restarts)),
                                  int(c.eval.regular_examples)),
    "cw_l2": lambda c, s: EvalAttack(attacks.make("cw_l2"), int(c.eval.regular_examples)),
    "transfer": lambda c, s: EvalAttack(attacks.Transfer(_linf(c), s.classifier.logits_fn), int(c.eval.regular_examples),
                                        context=(s.sources["transfer"], None)),
}


def eval_attacks(c, s: Setting) -> dict[str, EvalAttack]:
    """result key → :class:`EvalAttack`: the config's image-space attacks (``eval.attacks``, the
    paper's L∞ one first), then each manifold's attack, in the setting's order."""
    out = {records.REGULAR_KEYS[name]: REGULAR_ATTACKS[name](c, s) for name in c.eval.attacks}
    common = dict(iterations=int(c.eval.iterations), restarts=int(c.eval.restarts))
    for m in s.manifolds.values():
        out[m.attack_key] = EvalAttack(m.attack(float(c.eval.eta), **common), int(c.eval.on_manifold_examples), m,
                                       m.context)
    return out


def _compiled_attack(s: Setting, name: str, attack: attacks.Attack, spread: bool = False):
    """One jitted program per attack object for all runs: ((variables, context), batch, key) →
    outcomes.  Build the attacks once (:func:`eval_attacks`) and reuse them, or every run compiles anew.
    ``spread``: the rows are split over several devices, so the attack evaluates every row
    (``chunks=1``): gathering the moving rows would move them between devices, and each device
    would compute every chunk."""
    cached = s.compiled.get(name)
    if cached is not None and cached[0] is attack and cached[2] == spread:
        return cached[1]
    clf = s.classifier
    original, attack = attack, attack.with_chunks(1) if spread else attack

    @jax.jit
    def fn(params, batch, key):
        variables, context = params
        logits_fn = clf.logits_fn(variables)
        res = attack(logits_fn, batch, key, context)
        clean = attack.clean(batch, context)
        pred = jnp.argmax(jax.vmap(logits_fn)(res.x), axis=-1)
        return {"success": res.success, "first_success": res.first_success, "l2": res.l2, "linf": res.linf,
                "correct": attack.counted(logits_fn, batch, context), "x": res.x, "clean": clean, "pred": pred}

    s.compiled[name] = (original, fn, spread)
    return fn


PER_RESTART = ("success", "first_success", "l2", "linf", "x", "pred")  # outcomes with a leading restart axis


def attack_model(c, s: Setting, variables, key: jax.Array, name: str, attack: attacks.Attack, count: int,
                 manifold=None, progress: bool = False, mesh=None, context: Any = None) -> dict[str, np.ndarray]:
    """Attack the first ``count`` test images (through ``manifold``'s fields when the attack is on
    one) in chunks of ``eval.batch``, by :func:`attacks.evaluate.over_rows`.  ``context``: the
    attack's (default: the manifold's).  ``correct`` holds the examples the attack counts."""
    fn = _compiled_attack(s, name, attack, spread=mesh is not None and parallel.num_devices(mesh) > 1)
    kinds = () if manifold is None else (manifold.kind,)
    if context is None and manifold is not None:
        context = manifold.context
    chunk = min(int(c.eval.batch), count)
    # Inside the compiled program the attack's checks cannot see values: check every chunk here
    logits_fn = s.classifier.logits_fn(variables)
    for start in range(0, count, chunk):
        attacks.check_inputs(attack, logits_fn, s.rows("test", kinds, min(start + chunk, count), start), context)
    out = evaluate.over_rows(fn, (variables, context), s.rows("test", kinds, count), key, chunk=chunk, mesh=mesh,
                             axes={k: 1 for k in PER_RESTART}, desc=f"  attack {name}" if progress else None)
    out["index"] = np.arange(count, dtype=np.int32)
    return out


def summarize_attack(out: dict[str, np.ndarray], attack: attacks.Attack) -> dict:
    success, correct = out["success"], out["correct"]
    hit = success & correct[None]
    return {
        "success_rate": float(attacks.success_rate(success, correct)),
        "worst_case_success_rate": float(attacks.worst_case_success_rate(success, correct)),
        "num_examples": int(correct.shape[0]),
        "num_correct": int(correct.sum()),
        "restarts": int(success.shape[0]),
        "eps": float(np.asarray(attack.config.eps)),
        "iterations": int(attack.config.iterations),
        "mean_l2": float(out["l2"][hit].mean()) if hit.any() else None,
        "mean_linf": float(out["linf"][hit].mean()) if hit.any() else None,
    }


# -- the attack-strength audit ----------------------------------------------------------------


def wants_audit(c, key) -> bool:
    return bool(int(c.audit.examples)) and (not c.audit.largest_only or key.n == max(int(n) for n in c.sizes))


def audit_attacks(c, attack_set: dict) -> dict[str, list]:
    """result key → the stronger versions of that evaluation attack (one per objective in
    ``audit.objectives``): ``audit.iteration_factor`` × its iterations, ``audit.restart_factor``
    × its restarts.  Build once and reuse (one compiled program each for all runs)."""
    from manifold_robustness.attacks.objectives import OBJECTIVES

    a = c.audit
    return {name: [e.attack.stronger(max(1, int(e.attack.config.iterations * a.iteration_factor)),
                                     int(e.attack.config.restarts * a.restart_factor), OBJECTIVES[o])
                   for o in a.objectives]
            for name, e in attack_set.items()}


def audit_model(c, s: Setting, variables, key: jax.Array, attack_set: dict, strong: dict, outs: dict,
                progress: bool = False, mesh=None) -> tuple[dict, dict]:
    """The audit of one model: for each evaluation attack, its first ``audit.examples`` attacked
    images attacked again by each stronger version; an example counts as broken when the paper
    attack (any restart) or any strong attack broke it, so the strong rate is never below the
    paper's on the same images.  Returns (summary by result key, ``audit/<key>/success`` arrays)."""
    summary, arrays = {}, {}
    for name, e in attack_set.items():
        n = min(int(c.audit.examples), e.count)
        paper = np.asarray(outs[name]["success"][:, :n]).any(0)
        counted = np.asarray(outs[name]["correct"][:n])
        broken = paper.copy()
        for j, atk in enumerate(strong[name]):
            o = attack_model(c, s, variables, jax.random.fold_in(key, j), f"{name}/audit{j}", atk, n, e.manifold,
                             progress, mesh, context=e.context)
            broken |= np.asarray(o["success"]).any(0)
        rate = lambda hit: float(attacks.worst_case_success_rate(hit[None], counted))  # noqa: E731
        summary[name] = {"examples": n, "num_correct": int(counted.sum()), "paper_worst_case": rate(paper),
                         "strong_worst_case": rate(broken), "iterations": int(strong[name][0].config.iterations),
                         "restarts": int(strong[name][0].config.restarts), "objectives": list(c.audit.objectives)}
        arrays[f"audit/{name}/success"] = broken
    return summary, arrays


# -- distances ----------------------------------------------------------------------------------


def wants_distances(c, key) -> bool:
    sizes = tuple(int(n) for n in c.distances.sizes) or (max(int(n) for n in c.sizes),)
    return key.method in c.distances.methods and key.n in sizes and key.seed in tuple(c.distances.seeds)


KNN_NEIGHBOURS, KNN_COMPONENTS = 50, 40  # paper §5.4: 50 neighbours in a 40-component PCA space of the training images


def measure_distances(c, s: Setting, variables, key: jax.Array, attack_set: dict) -> tuple[dict, dict]:
    """Claim 1 on the setting's first manifold: (summary, ``distances/<group>/<field>`` arrays),
    by the manifold's own distance; for each of the dataset's k-NN centrings also by the k-NN
    local subspace of the training images (``distances_knn_<center>/…``, summaries under
    ``summary["knn"][center]``), from the same adversarial examples."""
    m = next(iter(s.manifolds.values()))
    count = min(int(c.distances.examples), s.test.images.shape[0])
    rows = s.rows("test", (m.kind,), count)
    k_reg, k_on, k_proj = jax.random.split(key, 3)
    groups = measure.attacked_groups(m, s.classifier.logits_fn(variables), rows, (k_reg, k_on),
                                     regular=attack_set[REGULAR].attack, on_manifold=attack_set[m.attack_key].attack)
    steps = int(c.distances.iterations)  # 0: the manifold's own projection
    how = dataclasses.replace(m.projection_config, iterations=steps) if steps else None
    # one compiled program for all runs
    by = s.compiled.setdefault(("projection", m.kind, how), measure.ProjectionMeasure(m, how))
    rep = measure.measure_groups(groups, rows, by, by.params(m.context), k_proj, chunk=int(c.eval.batch) * 2)
    summary, arrays = rep.summary, rep.arrays()
    for center in s.spec.knn_centers:
        knn = s.knn_measure(center)
        r = measure.measure_groups(groups, rows, knn, knn.params(None), k_proj, chunk=int(c.eval.batch) * 2)
        summary.setdefault("knn", {})[center] = r.summary
        arrays.update(r.arrays(f"distances_knn_{center}"))
    return summary, arrays
