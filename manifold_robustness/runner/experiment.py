"""Run an experiment config: expand it into runs, train, attack, measure, store (shell code).

>>> cfg = runner.config.load("fonts:quick")
>>> runner.experiment.run(cfg, "results/fonts_quick")          # resumes; finished runs are skipped
>>> runner.experiment.status(cfg, "results/fonts_quick")       # {RunKey: "done" | "partial" | "pending"}

A config expands into *groups* — one (method, N) with all its seeds, trained together under
``vmap`` — and each group into one *run* per seed (:class:`~.records.RunKey`).  ``shard=(i, n)``
takes every n-th group, so n processes (or hosts) split a grid; every random key is derived from
the run itself (seed, method, N), never from the order of work, so a sharded grid gives the same
results as an unsharded one.  After training, each seed's model is attacked on the first test
images (regular L∞; on the true manifold on FONTS; on the learned manifold when the config has
VAE-GANs), distances to the manifold are measured where the config asks, and the run is saved by
:class:`~.store.ResultsStore`.  A killed experiment resumes from the group's last epoch checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import zlib
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from manifold_robustness import attacks, claims, data, models
from manifold_robustness.runner import config as config_lib
from manifold_robustness.runner.files import writable
from manifold_robustness.runner.records import RunKey
from manifold_robustness.runner.store import ResultsStore
from manifold_robustness.training import MethodContext, TrainConfig, trainer

log = logging.getLogger(__name__)


def _say(text: str) -> None:
    print(text, flush=True)


@dataclasses.dataclass(frozen=True)
class Group:
    """All seeds of one (dataset, method, N): trained in one compiled program."""

    dataset: str
    method: str
    n: int
    seeds: tuple[int, ...]

    @property
    def keys(self) -> list[RunKey]:
        return [RunKey(self.dataset, self.method, self.n, s) for s in self.seeds]

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.method}/n{self.n}"


def plan(c) -> list[Group]:
    """The config's groups, smallest N first (so a partial grid already spans the methods)."""
    return [Group(c.dataset, m, int(n), tuple(int(s) for s in c.seeds)) for n in sorted(c.sizes) for m in c.methods]


def planned_runs(c) -> list[RunKey]:
    return [k for g in plan(c) for k in g.keys]


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"i/n"`` → (i, n) with 0 <= i < n."""
    if text is None:
        return (0, 1)
    if isinstance(text, tuple):
        i, n = text
    else:
        try:
            i, n = (int(p) for p in str(text).split("/"))
        except ValueError:
            raise ValueError(f"--shard must look like i/n (e.g. 0/2); got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard i/n needs 0 <= i < n; got {i}/{n}")
    return i, n


def shard(groups: list[Group], spec) -> list[Group]:
    i, n = parse_shard(spec)
    return groups[i::n]


def run_key(key: RunKey) -> jax.Array:
    """The run's own key: from its seed and a stable hash of (dataset, method, N)."""
    tag = zlib.crc32(f"{key.dataset}/{key.method}/{key.n}".encode())
    return jax.random.fold_in(jax.random.key(key.seed), tag & 0x7FFFFFFF)


def status(c, root) -> dict[RunKey, str]:
    """The state of every planned run; refuses a root written by another config."""
    st = ResultsStore(root)
    st.check_config(config_lib.resolved(config_lib.check(c)))
    return st.status(planned_runs(c))


def stored_config(root):
    """The config a results root was written with (``ml_collections.ConfigDict``)."""
    import ml_collections

    exp = ResultsStore(root).experiment()
    if exp is None:
        raise ValueError(f"{root} is not a results folder (no experiment.json); run `experiment run` first")
    return ml_collections.ConfigDict(exp["config"])


def report(root, out_dir=None, say: Callable[[str], None] = _say):
    """Write the four-claims report of a results root (default ``<root>/report``) from its
    finished runs; the runs still missing are listed in it, and a damaged run is named (``say``)
    and left out.  Returns ``report.summary.Report``."""
    from manifold_robustness.report import summary

    c = stored_config(root)
    st = ResultsStore(root)
    out = out_dir if out_dir is not None else st.root / "report"
    writable(Path(out), "choose a writable report folder (--out)")
    damaged: dict = {}
    records = st.records(damaged=damaged)
    for why in damaged.values():
        say(f"warning: {why}; the report leaves it out")
    return summary.write_report(records, out, planned=planned_runs(c), experiment=st.experiment())


# -- data and manifolds -------------------------------------------------------------------------


@dataclasses.dataclass
class Setting:
    """Everything the runs of one config share: data, classifier, manifolds, compiled attacks."""

    train: data.Dataset
    test: data.Dataset
    classifier: models.Classifier
    ranges: Any
    prototypes: jax.Array | None = None
    vae: Any = None
    vae_variables: Any = None
    train_latents: np.ndarray | None = None
    test_latents: np.ndarray | None = None
    compiled: dict = dataclasses.field(default_factory=dict)

    @property
    def learned_decode(self):
        """``fn(variables, z, labels) -> images`` of the class VAE-GANs (None without them)."""
        from manifold_robustness.manifolds import vaegan

        return None if self.vae is None else vaegan.decoder_fn(self.vae)


def fonts_config(c) -> data.FontsConfig:
    d = c.data
    return data.FontsConfig(num_fonts=d.num_fonts or None, repetitions=d.repetitions, test_repetitions=d.test_repetitions,
                            difficulty=d.difficulty, seed=d.seed)


def _take(ds: data.Dataset, n: int) -> data.Dataset:
    fields = {f: getattr(ds, f)[:n] for f in ("images", "labels", "font_ids", "theta") if getattr(ds, f) is not None}
    return dataclasses.replace(ds, **fields)


def prepare(c, store: ResultsStore, progress: bool = True, say: Callable[[str], None] = _say) -> Setting:
    """Load the data (and train / load the VAE-GANs when the config needs a learned manifold)."""
    setting = load_setting(c)
    if config_lib.uses_learned_manifold(c):
        _prepare_vaegan(c, store, setting, progress, say)
    return setting


def load_setting(c) -> Setting:
    """The data and classifier of a config, checked against it (no VAE-GANs; writes nothing to
    the results root)."""
    largest = max(int(n) for n in c.sizes)
    if c.dataset == "fonts":
        fc = fonts_config(c)
        kwargs = {"config": fc}
        ranges, prototypes = fc.ranges, jnp.asarray(data.fonts_prototypes(fc))
    else:
        kwargs = {"source_dir": c.data.source_dir or None}
        ranges, prototypes = trainer.default_ranges(c.dataset), None

    def load(split, limit, key):
        try:
            return data.load(c.dataset, split, limit=limit, **kwargs)
        except ValueError as err:
            raise ValueError(f"{key} asks for {limit} {split} images: {err}") from None

    train = load("train", largest, "sizes")
    test = load("test", int(c.eval.test_examples), "eval.test_examples")
    if train.images.shape[0] < largest:
        raise ValueError(f"{c.dataset} has only {train.images.shape[0]} training images; sizes ask for up to {largest}")
    if test.images.shape[0] < max(c.eval.regular_examples, c.eval.on_manifold_examples):
        raise ValueError(f"{c.dataset} has only {test.images.shape[0]} test images; eval asks for more")
    clf, _ = models.create(c.model, train.images.shape[1:], train.num_classes, jax.random.key(0))
    return Setting(train, test, clf, ranges, prototypes)


def _prepare_vaegan(c, store: ResultsStore, s: Setting, progress: bool, say) -> None:
    from manifold_robustness.manifolds import vaegan, vaegan_train

    overrides = dict(channels=int(c.vaegan.channels), latent_dim=int(c.vaegan.latent_dim))
    vcfg = vaegan.VAEGANConfig.paper(c.dataset, **overrides)
    if c.vaegan.epochs:
        vcfg = dataclasses.replace(vcfg, train=dataclasses.replace(vcfg.train, epochs=int(c.vaegan.epochs)))
    say(f"class VAE-GANs for {c.dataset}: {vcfg.train.epochs} epochs on the whole training split "
        f"(checkpoints in {store.root / 'vaegan'})")
    full = data.load(c.dataset, "train", source_dir=c.data.source_dir or None, dtype=np.uint8) \
        if c.dataset != "fonts" else data.load("fonts", "train", config=fonts_config(c), dtype=np.uint8)
    with claims.wait(store.claim_path("vaegan"), say=say):  # one worker trains them; the others then load them
        result = vaegan_train.train(full, vcfg, checkpoint_dir=str(store.root / "vaegan"), progress=progress)
    s.vae, s.vae_variables = result.vae, result.variables
    s.train_latents = np.asarray(vaegan.latent_codes(result.vae, result.variables, s.train.images, s.train.labels))
    s.test_latents = np.asarray(vaegan.latent_codes(result.vae, result.variables, s.test.images, s.test.labels))


def _pad_rows(arrays: list[np.ndarray], size: int) -> list[np.ndarray]:
    m = arrays[0].shape[0]
    return [np.pad(a, [(0, size - m)] + [(0, 0)] * (a.ndim - 1), mode="edge") if m < size else a for a in arrays]


# -- training -----------------------------------------------------------------------------------


def train_config(c) -> TrainConfig:
    return TrainConfig(**{k: c.train[k] for k in c.train.keys()})


def method_context(c, s: Setting) -> MethodContext:
    arrays = {}
    if s.prototypes is not None:
        arrays["prototypes"] = s.prototypes
    decode_fn = None
    if s.vae is not None:
        arrays["decoder"] = s.vae_variables
        decode_fn = s.learned_decode
    return MethodContext(s.classifier, ranges=s.ranges, eta=float(c.adversarial.eta), eps=float(c.adversarial.eps),
                         attack={"iterations": int(c.adversarial.iterations)}, decode_fn=decode_fn, arrays=arrays or None)


def train_group(c, s: Setting, store: ResultsStore, g: Group, progress: bool, mesh=None) -> trainer.TrainResult:
    subset = _take(s.train, g.n)
    extra = {"latent": s.train_latents[: g.n]} if s.train_latents is not None else None
    kwargs = {"mesh": mesh} if mesh is not None else {}
    resolved = config_lib.resolved(c)
    return trainer.train(s.classifier, g.method, subset, seeds=g.seeds, config=train_config(c), test_data=s.test,
                         context=method_context(c, s), checkpoint_dir=str(store.train_dir(g.dataset, g.method, g.n, g.seeds)),
                         run_config={"dataset": g.dataset, "data": resolved["data"], "adversarial": resolved["adversarial"]},
                         progress=progress, extra_arrays=extra, **kwargs)


# -- attacks ------------------------------------------------------------------------------------


def eval_attacks(c, s: Setting) -> dict[str, tuple[attacks.Attack, int]]:
    """name → (attack, number of attacked test images) for this config and dataset."""
    common = dict(iterations=int(c.eval.iterations), restarts=int(c.eval.restarts))
    out = {"regular": (attacks.make("linf", eps=float(c.eval.eps), **common), int(c.eval.regular_examples))}
    if c.dataset == "fonts":
        out["on_true"] = (attacks.make("on_true_manifold", eps=float(c.eval.eta), ranges=s.ranges, **common),
                          int(c.eval.on_manifold_examples))
    if s.vae is not None:
        out["on_learned"] = (attacks.make("on_learned_manifold", decode_fn=s.learned_decode, eps=float(c.eval.eta), **common),
                             int(c.eval.on_manifold_examples))
    return out


def _attack_batch(s: Setting, name: str, rows: slice) -> tuple[dict, Any]:
    t = s.test
    batch = {"image": np.asarray(t.images[rows], np.float32), "label": np.asarray(t.labels[rows], np.int32)}
    if name == "on_true":
        batch.update(theta=np.asarray(t.theta[rows], np.float32), font_id=np.asarray(t.font_ids[rows], np.int32))
        return batch, {"prototypes": s.prototypes}
    if name == "on_learned":
        batch["latent"] = np.asarray(s.test_latents[rows], np.float32)
        return batch, s.vae_variables
    return batch, None


def _compiled_attack(s: Setting, name: str, attack: attacks.Attack):
    """One jitted program per attack object for all runs: (variables, batch, key, context) → outcomes.
    Build the attacks once (:func:`eval_attacks`) and reuse them, or every run compiles anew."""
    cached = s.compiled.get(name)
    if cached is not None and cached[0] is attack:
        return cached[1]
    clf = s.classifier

    @jax.jit
    def fn(variables, batch, key, context):
        logits_fn = clf.logits_fn(variables)
        res = attack(logits_fn, batch, key, context)
        clean = attack.clean(batch, context)
        pred = jnp.argmax(jax.vmap(logits_fn)(res.x), axis=-1)
        return {"success": res.success, "first_success": res.first_success, "l2": res.l2, "linf": res.linf,
                "correct": attacks.correct(logits_fn, clean, batch["label"]), "x": res.x, "clean": clean, "pred": pred}

    s.compiled[name] = (attack, fn)
    return fn


def attack_model(c, s: Setting, variables, key: jax.Array, name: str, attack: attacks.Attack, count: int,
                 progress: bool = False, mesh=None) -> dict[str, np.ndarray]:
    """Attack the first ``count`` test images in chunks of ``eval.batch`` (last chunk padded)."""
    fn = _compiled_attack(s, name, attack)
    chunk = min(int(c.eval.batch), count)
    size = chunk
    starts = range(0, count, chunk)
    # Inside the compiled program the attack's checks cannot see values: check every chunk here
    logits_fn = s.classifier.logits_fn(variables)
    for start in starts:
        batch, context = _attack_batch(s, name, slice(start, min(start + chunk, count)))
        attacks.check_inputs(attack, logits_fn, batch, context)
    if mesh is not None:  # every input on the mesh: rows split over its devices, the rest replicated
        from manifold_robustness import parallel

        size = parallel.pad_to_multiple(chunk, mesh)
        variables, context = parallel.replicate((variables, context), mesh)
    parts: dict[str, list] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=count, desc=f"  attack {name}", unit="img", leave=False)
    for i, start in enumerate(starts):
        stop = min(start + chunk, count)
        batch, _ = _attack_batch(s, name, slice(start, stop))
        keys = list(batch)
        padded = dict(zip(keys, _pad_rows([batch[k] for k in keys], size)))
        if mesh is not None:
            padded = parallel.shard_rows(padded, mesh)
        out = jax.device_get(fn(variables, padded, jax.random.fold_in(key, i), context))
        m = stop - start
        for k, v in out.items():
            parts.setdefault(k, []).append(v[:m] if k in ("correct", "clean") else v[:, :m])
        if bar is not None:
            bar.update(m)
    if bar is not None:
        bar.close()
    out = {k: np.concatenate(v, axis=0 if k in ("correct", "clean") else 1) for k, v in parts.items()}
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


def _gallery(outs: dict[str, dict], k: int) -> dict[str, np.ndarray]:
    """The first ``k`` attacked images with, per attack, the first successful restart (else 0)."""
    reg = outs.get("regular")
    on = outs.get("on_true") or outs.get("on_learned")
    if reg is None or on is None or k < 1:
        return {}
    k = min(k, reg["correct"].shape[0], on["correct"].shape[0])

    def pick(o):
        r = np.where(o["success"][:, :k].any(0), o["success"][:, :k].argmax(0), 0)
        idx = np.arange(k)
        return o["x"][r, idx], o["pred"][r, idx]

    reg_x, reg_pred = pick(reg)
    on_x, on_pred = pick(on)
    return {"gallery/clean": reg["clean"][:k], "gallery/regular": reg_x, "gallery/on_manifold": on_x,
            "gallery/on_manifold_clean": on["clean"][:k], "gallery/regular_pred": reg_pred.astype(np.int32),
            "gallery/on_manifold_pred": on_pred.astype(np.int32)}


def wants_distances(c, key: RunKey) -> bool:
    sizes = tuple(int(n) for n in c.distances.sizes) or (max(int(n) for n in c.sizes),)
    return key.method in c.distances.methods and key.n in sizes and key.seed in tuple(c.distances.seeds)


def measure_distances(c, s: Setting, variables, key: jax.Array, attack_set: dict) -> tuple[dict, dict]:
    from manifold_robustness.report import distances

    m = min(int(c.distances.examples), s.test.images.shape[0])
    t = s.test
    batch = {"image": np.asarray(t.images[:m], np.float32), "label": np.asarray(t.labels[:m], np.int32),
             "theta": np.asarray(t.theta[:m], np.float32), "font_id": np.asarray(t.font_ids[:m], np.int32)}
    rep = distances.fonts_distances(s.classifier.logits_fn(variables), batch, key, {"prototypes": s.prototypes},
                                    regular=attack_set["regular"][0], on_manifold=attack_set["on_true"][0], ranges=s.ranges,
                                    chunk=int(c.eval.batch) * 2)
    arrays = {f"distances/{g}/{f}": np.asarray(getattr(rep, f)[g]) for g in distances.GROUPS
              for f in ("distance", "norm", "angle", "example", "restart")}
    return rep.summary, arrays


# -- the experiment -----------------------------------------------------------------------------


def run(c, root, *, shard_spec=None, progress: bool = True, mesh=None, say: Callable[[str], None] = _say,
        stop_after: int | None = None) -> dict[str, int]:
    """Run (or resume) the config's grid into the results ``root``; returns counts of groups
    trained now / skipped (finished) / claimed (by another live worker, left to it).  Any number of
    workers may run on one root: each group, and the VAE-GANs, is trained by the one worker that
    claims it (see :mod:`manifold_robustness.claims`).  ``stop_after``: stop after that many groups
    (for tests of resumption)."""
    config_lib.check(c)
    groups = shard(plan(c), parse_shard(shard_spec))
    store = ResultsStore(root)
    store.check_config(config_lib.resolved(c))
    states = store.status([k for g in groups for k in g.keys])
    for key in (k for k, v in states.items() if v == "damaged"):
        say(f"{key.name} is damaged ({store.damage(key)}); redoing it")
    todo = [g for g in groups if any(states[k] != "done" for k in g.keys)]
    counts = {"groups": len(groups), "skipped": len(groups) - len(todo), "trained": 0, "claimed": 0}
    say(f"{len(groups)} groups ({sum(len(g.seeds) for g in groups)} runs) in this shard; "
        f"{counts['skipped']} already finished; results in {store.root}")
    if not todo:
        return counts
    s = load_setting(c)  # the last check (sizes against the data): nothing is written before it
    store.open(config_lib.resolved(c))
    store.clean_leftovers(say)
    if config_lib.uses_learned_manifold(c):
        _prepare_vaegan(c, store, s, progress, say)
    attack_set = eval_attacks(c, s)
    for g in todo:
        if stop_after is not None and counts["trained"] >= stop_after:
            break
        with claims.claim(store.claim_path(g.name)) as held:
            if held is None:
                say(f"[{g.name}] claimed by {claims.describe(claims.read(store.claim_path(g.name)))}; "
                    "going on to the next group")
                counts["claimed"] += 1
            elif _run_group(c, s, store, g, attack_set, progress, mesh, say):
                counts["trained"] += 1
            else:
                counts["skipped"] += 1
    return counts


def _run_group(c, s: Setting, store: ResultsStore, g: Group, attack_set: dict, progress, mesh, say) -> bool:
    """Train the group (under its claim) and save its unfinished runs; False when another worker
    finished them all before the claim was ours."""
    keys = [k for k in g.keys if not store.is_done(k)]
    if not keys:
        return False
    say(f"[{g.name}] seeds {', '.join(map(str, g.seeds))}")
    t0 = time.perf_counter()
    result = train_group(c, s, store, g, progress, mesh)
    train_s = time.perf_counter() - t0
    for i, key in enumerate(g.keys):
        if key in keys:
            _finish_run(c, s, store, key, result, i, train_s, attack_set, progress, mesh, say)
    store.remove_train_dir(g.dataset, g.method, g.n, g.seeds)
    return True


def _finish_run(c, s: Setting, store: ResultsStore, key: RunKey, result, i: int, train_s: float, attack_set: dict,
                progress, mesh, say) -> None:
    variables = result.variables_for(i)
    k_attack, k_dist = jax.random.split(run_key(key))
    t0 = time.perf_counter()
    outs, summaries, arrays = {}, {}, {}
    for j, (name, (attack, count)) in enumerate(attack_set.items()):
        outs[name] = attack_model(c, s, variables, jax.random.fold_in(k_attack, j), name, attack, count, progress, mesh)
        summaries[name] = summarize_attack(outs[name], attack)
        for f in ("success", "first_success", "l2", "linf", "correct", "index"):
            arrays[f"attacks/{name}/{f}"] = outs[name][f]
    arrays.update(_gallery(outs, int(c.gallery)))
    if arrays.get("gallery/clean") is not None:
        arrays["gallery/label"] = np.asarray(s.test.labels[: arrays["gallery/clean"].shape[0]], np.int32)
    attack_s = time.perf_counter() - t0
    dist_summary, dist_s = None, 0.0
    if wants_distances(c, key):
        t0 = time.perf_counter()
        dist_summary, dist_arrays = measure_distances(c, s, variables, k_dist, attack_set)
        arrays.update(dist_arrays)
        dist_s = time.perf_counter() - t0
    history = {k: [float(h[k][i]) for h in result.history] for k in ("loss", "error")}
    metrics = {
        "test_error": float(result.test["error"][i]),
        "train_error": history["error"][-1] if history["error"] else None,
        "train_loss": history["loss"][-1] if history["loss"] else None,
        "history": history,
        "attacks": summaries,
        "distances": dist_summary,
        "timing": {"train_s": train_s, "attack_s": attack_s, "distance_s": dist_s},
    }
    model = {"variables": variables}
    if result.opt_state is not None:
        model["opt_state"] = jax.tree.map(lambda x: x[i], result.opt_state)
    store.save_run(key, model=jax.device_get(model), metrics=metrics, arrays=arrays,
                   info={"architecture": s.classifier.name, "input_shape": list(s.classifier.input_shape),
                         "num_classes": s.classifier.num_classes})
    rates = ", ".join(f"{n} {v['success_rate']:.2f}" for n, v in summaries.items())
    say(f"  {key.name}: test error {metrics['test_error']:.3f}; success {rates}"
        + (f"; distances regular {dist_summary['regular']['mean']}" if dist_summary else ""))
