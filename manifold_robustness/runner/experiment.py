"""Run an experiment config: expand it into runs, train, attack, measure, store (shell code).

>>> cfg = runner.config.load("fonts:quick")
>>> runner.experiment.run(cfg, "results/fonts_quick")          # resumes; finished runs are skipped
>>> runner.experiment.status(cfg, "results/fonts_quick")       # {RunKey: "done" | "partial" | "pending"}

A config expands into *groups* — one (method, N) with all its seeds, trained together under
``vmap`` — and each group into one *run* per seed (:class:`~.records.RunKey`).  ``shard=(i, n)``
takes every n-th group, so n processes (or hosts) split a grid; every random key is derived from
the run itself (seed, method, N), never from the order of work, so a sharded grid gives the same
results as an unsharded one.  After training, each seed's model is attacked on the first test
images (regular L∞, then on each of the setting's manifolds, :mod:`.setting`), distances to the
first manifold are measured where the config asks, and the run is saved by
:class:`~.store.ResultsStore`.  A killed experiment resumes from the group's last epoch checkpoint.

Several processes (``jax.distributed``) run a grid in one of two ways.  Independent processes
each run their own shard on their own devices (the CLI's default for ``experiment run``).  Or
all of them run the whole grid as one program over every process's devices, when ``mesh`` spans
processes (the ``train`` command): then process 0 takes the claims, reads the store and writes
everything, its decisions are sent to the others (:func:`distributed.agree`), and groups keep no
epoch checkpoints (a killed group starts again; finished runs are still skipped).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import zlib
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from manifold_robustness import claims, data, distributed, parallel
from manifold_robustness.runner import config as config_lib
from manifold_robustness.runner import setting
from manifold_robustness.runner.files import writable
from manifold_robustness.runner.records import RunKey
from manifold_robustness.runner.setting import Setting
from manifold_robustness.runner.store import ResultsStore, with_added_settings
from manifold_robustness.training import METHODS, MethodContext, loop, trainer

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
    return ml_collections.ConfigDict(with_added_settings(exp["config"]))


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


# -- training -----------------------------------------------------------------------------------


def _take(ds: data.Dataset, n: int) -> data.Dataset:
    fields = {f: getattr(ds, f)[:n] for f in ("images", "labels", "font_ids", "theta") if getattr(ds, f) is not None}
    return dataclasses.replace(ds, **fields)


train_config = setting.train_config


def inner_attack(c) -> dict:
    """The inner attacks' settings from ``c.adversarial``: its iterations, and its Adam lr when set."""
    lr = c.adversarial.get("lr")
    return {"iterations": int(c.adversarial.iterations), **({} if lr is None else {"lr": float(lr)})}


def method_context(c, s: Setting, method: str) -> MethodContext:
    """The method's context: its manifold (the one its registry entry ``needs``) and that
    manifold's context as the compiled epoch's ``arrays``."""
    manifold = s.manifold(METHODS.needs(method), f"training method {method}")
    return MethodContext(s.classifier, ranges=s.ranges, eta=float(c.adversarial.eta), eps=float(c.adversarial.eps),
                         attack=inner_attack(c), manifold=manifold,
                         arrays=None if manifold is None else manifold.context)


def train_group(c, s: Setting, store: ResultsStore, g: Group, progress: bool, mesh=None) -> trainer.TrainResult:
    """Train a group's seeds.  The data is padded to the grid's largest N (``capacity``; at least
    :data:`loop.MIN_CAPACITY`), so each method compiles one epoch for all its N, shared with every
    small grid of the same model and method."""
    subset = _take(s.train, g.n)
    needs = METHODS.needs(g.method)
    extra = {k: v[: g.n] for k, v in s.fields[needs]["train"].items()} if needs is not None else None
    kwargs = {"mesh": mesh} if mesh is not None else {}
    resolved = config_lib.resolved(c)
    # one program over several processes keeps no epoch checkpoints: process 0 alone writes files, and
    # a resume would need every process to read them (see the module docstring)
    ckpt = None if parallel.spans_processes(mesh) else str(store.train_dir(g.dataset, g.method, g.n, g.seeds))
    return trainer.train(s.classifier, g.method, subset, seeds=g.seeds, config=train_config(c), test_data=s.test,
                         context=method_context(c, s, g.method), checkpoint_dir=ckpt,
                         run_config={"dataset": g.dataset, "data": resolved["data"], "adversarial": resolved["adversarial"]},
                         progress=progress, extra_arrays=extra,
                         capacity=max(*c.sizes, loop.MIN_CAPACITY), **kwargs)


def _gallery(outs: dict[str, dict], on_key: str | None, k: int) -> dict[str, np.ndarray]:
    """The first ``k`` attacked images with, for the regular attack and the setting's first
    manifold's attack (``on_key``), the first successful restart (else 0)."""
    reg = outs.get(setting.REGULAR)
    on = outs.get(on_key) if on_key is not None else None
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
    collective = parallel.spans_processes(mesh)
    writer = _writes(mesh)
    if not writer:  # one program over several processes: process 0 writes and reports, the rest are quiet
        say, progress = (lambda text: None), False
    if collective:
        _check_collective(c)
    store.check_config(config_lib.resolved(c))
    states = store.status([k for g in groups for k in g.keys])
    for key in (k for k, v in states.items() if v == "damaged"):
        say(f"{key.name} is damaged ({store.damage(key)}); redoing it")
    unfinished = distributed.agree([any(states[k] != "done" for k in g.keys) for g in groups], collective)
    todo = [g for g, u in zip(groups, unfinished) if u]
    counts = {"groups": len(groups), "skipped": len(groups) - len(todo), "trained": 0, "claimed": 0}
    say(f"{len(groups)} groups ({sum(len(g.seeds) for g in groups)} runs) in this shard; "
        f"{counts['skipped']} already finished; results in {store.root}")
    if not todo:
        return counts
    s = setting.load_setting(c)  # the last check (sizes against the data): nothing is written before it
    if writer:
        store.open(config_lib.resolved(c))
        store.clean_leftovers(say)
    setting.add_sources(c, setting.add_manifolds(c, s, store, progress, say), store, progress, say)
    attack_set = setting.eval_attacks(c, s)
    strong = setting.audit_attacks(c, attack_set)
    for g in todo:
        if stop_after is not None and counts["trained"] >= stop_after:
            break
        with (claims.claim(store.claim_path(g.name)) if writer else _nothing()) as held:
            if distributed.agree(held is None, collective):
                say(f"[{g.name}] claimed by {claims.describe(claims.read(store.claim_path(g.name)))}; "
                    "going on to the next group")
                counts["claimed"] += 1
            elif _run_group(c, s, store, g, attack_set, strong, progress, mesh, say):
                counts["trained"] += 1
            else:
                counts["skipped"] += 1
    return counts


def _writes(mesh) -> bool:
    """Whether this process writes the store: always, unless ``mesh`` spans processes (one
    program over several of them), where process 0 alone does."""
    return distributed.is_writer() or not parallel.spans_processes(mesh)


def _check_collective(c) -> None:
    """Refuse what one program over several processes cannot do yet: train a VAE-GAN or a transfer
    source (trained by one worker under a claim while the others wait: not in lockstep)."""
    from manifold_robustness.manifolds.objects import KINDS

    trained = [k for k in config_lib.manifolds(c) if KINDS[k].trained]
    if trained or "transfer" in c.eval.attacks:
        what = f"the {', '.join(trained)} manifold's VAE-GANs" if trained else "the transfer attack's source model"
        raise ValueError(f"this config needs {what}, which one program over several processes does not train; run "
                         "it with `experiment run` (each process its own shard) or in one process")


class _nothing:
    """A claim that is not taken (processes other than 0 of one program: process 0 holds it)."""

    def __enter__(self):
        return True

    def __exit__(self, *exc):
        return False


def _run_group(c, s: Setting, store: ResultsStore, g: Group, attack_set: dict, strong: dict, progress, mesh,
               say) -> bool:
    """Train the group (under its claim) and save its unfinished runs; False when another worker
    finished them all before the claim was ours."""
    collective = parallel.spans_processes(mesh)
    keys = [k for k, done in zip(g.keys, distributed.agree([store.is_done(k) for k in g.keys], collective)) if not done]
    if not keys:
        return False
    say(f"[{g.name}] seeds {', '.join(map(str, g.seeds))}")
    t0 = time.perf_counter()
    result = train_group(c, s, store, g, progress, mesh)
    train_s = time.perf_counter() - t0
    for i, key in enumerate(g.keys):
        if key in keys:
            _finish_run(c, s, store, key, result, i, train_s, attack_set, strong, progress, mesh, say)
    if _writes(mesh):
        store.remove_train_dir(g.dataset, g.method, g.n, g.seeds)
    return True


def _finish_run(c, s: Setting, store: ResultsStore, key: RunKey, result, i: int, train_s: float, attack_set: dict,
                strong: dict, progress, mesh, say) -> None:
    collective = parallel.spans_processes(mesh)
    variables = result.variables_for(i)
    if collective:  # on every process as host arrays: each runs its own copy of what is not on the mesh
        variables = parallel.to_host(variables)
    k_attack, k_dist = jax.random.split(run_key(key))
    k_audit = jax.random.fold_in(run_key(key), 0x617564)  # apart from the others: they stay as they were
    t0 = time.perf_counter()
    outs, summaries, arrays = {}, {}, {}
    for name, e in attack_set.items():  # each attack's key from its name: adding an attack changes no other
        k = jax.random.fold_in(k_attack, zlib.crc32(name.encode()) & 0x7FFFFFFF)
        outs[name] = setting.attack_model(c, s, variables, k, name, e.attack, e.count,
                                          e.manifold, progress, mesh, context=e.context)
        summaries[name] = setting.summarize_attack(outs[name], e.attack)
        for f in ("success", "first_success", "l2", "linf", "correct", "index"):
            arrays[f"attacks/{name}/{f}"] = outs[name][f]
    first = next(iter(s.manifolds.values()), None)
    arrays.update(_gallery(outs, None if first is None else first.attack_key, int(c.gallery)))
    if arrays.get("gallery/clean") is not None:
        arrays["gallery/label"] = np.asarray(s.test.labels[: arrays["gallery/clean"].shape[0]], np.int32)
    attack_s = time.perf_counter() - t0
    audit, audit_s = None, 0.0
    if setting.wants_audit(c, key):
        t0 = time.perf_counter()
        audit, audit_arrays = setting.audit_model(c, s, variables, k_audit, attack_set, strong, outs, progress, mesh)
        arrays.update(audit_arrays)
        audit_s = time.perf_counter() - t0
    dist_summary, dist_s = None, 0.0
    if setting.wants_distances(c, key):
        t0 = time.perf_counter()
        dist_summary, dist_arrays = setting.measure_distances(c, s, variables, k_dist, attack_set)
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
        "audit": audit,
        "timing": {"train_s": train_s, "attack_s": attack_s, "audit_s": audit_s, "distance_s": dist_s},
    }
    model = {"variables": variables}
    if result.opt_state is not None:
        model["opt_state"] = jax.tree.map(lambda x: x[i], result.opt_state)
    model = parallel.to_host(model) if collective else jax.device_get(model)
    if _writes(mesh):
        store.save_run(key, model=model, metrics=metrics, arrays=arrays,
                       info={"architecture": s.classifier.name, "input_shape": list(s.classifier.input_shape),
                             "num_classes": s.classifier.num_classes})
    rates = ", ".join(f"{n} {v['success_rate']:.2f}" for n, v in summaries.items())
    say(f"  {key.name}: test error {metrics['test_error']:.3f}; success {rates}"
        + (f"; distances regular {dist_summary['regular']['mean']}" if dist_summary else ""))
