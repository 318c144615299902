"""Experiment configs: one ``ml_collections.ConfigDict`` per dataset, presets, overrides, checks.

The modules of :mod:`manifold_robustness.configs` (``fonts``, ``fashion_mnist``, ``emnist``,
``celeba``; shipped with the package) each define ``get_config(preset)`` on top of :func:`base`,
which holds the paper's settings with their source in the reference digest.  :func:`load` turns
``"fonts:quick"`` (or a path ``my_config.py:quick``) plus ``key=value`` overrides into a checked
config.

Fields (paper defaults; digest section in brackets):

- ``dataset``; ``data``: dataset options (FONTS build: ``num_fonts``, ``repetitions``, …;
  other datasets: ``source_dir``).
- ``model``: classifier architecture (``cnn`` [§6.1]).
- ``methods``, ``sizes`` (N), ``seeds``: the grid [§6.2: N from 250 to 40k, 5 seeds].
- ``train``: ``training.TrainConfig`` fields [§6.2: Adam lr 0.01 ×0.95/epoch, wd 1e-4, batch 100,
  20 epochs].
- ``adversarial``: ``eps`` 0.3, ``eta`` 0.3 and the inner attack's ``iterations`` 40 [§6.3] and
  Adam ``lr`` (None: the attack's own, 0.005 as in the paper).
- ``eval``: ``test_examples`` (test error on this many test images), ``regular_examples`` 1000 and
  ``on_manifold_examples`` 2500 attacked test images, ``restarts`` 5, ``iterations`` 40,
  ``batch`` (attack chunk; ~100 is fastest on CPU) [§5]; ``attacks``: the image-space attacks,
  ``linf`` (the paper's, default), ``l2`` (PGD, ε = 1.5), ``cw_l2`` (C&W, 120 iterations),
  ``transfer`` (the L∞ attack crafted on a source model: ``transfer.examples`` 10k training
  images, ``transfer.epochs`` 20, ``transfer.seed``, not one of the grid's) [§5.3]; every
  manifold the setting prepares is attacked besides.
- ``distances``: distance to the manifold for the runs of ``methods`` at ``sizes`` (empty: the
  largest N) and ``seeds``, on ``examples`` test images, measured on the first of the setting's
  manifolds (FONTS: the true one) by projecting onto it with ``iterations`` optimiser steps (0:
  the manifold's own, the paper's 100) [§5.4, Fig. 3].
- ``gallery``: test images kept with their adversarial examples per run (claim 2's figure).
- ``audit``: the attack-strength audit: the first ``examples`` attacked images of every
  evaluation attack (0: off) attacked again with ``iteration_factor`` × the iterations and
  ``restart_factor`` × the restarts, once per objective in ``objectives`` (``cross_entropy``,
  ``margin``), worst case over all, for every run (``largest_only``: those at the largest N).  ``paper``:
  200 images, 10×, 4×; ``quick``: the largest N, 50 images, 5×, 2×; ``tiny``: off.
- ``vaegan``: the VAE-GANs of the learned manifolds (``epochs``: 0 = the paper's; ``examples``:
  train on the first this many training images, 0 = the whole split as in the paper; ``on_learned``:
  prepare and attack the class-specific learned manifold even when no method needs it).

Which manifolds a run prepares and attacks is :func:`manifolds`: the dataset declares the ones it
has (``data.specs``), methods declare the one they need (``needs=`` in the method registry).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Iterable

import ml_collections

DATASETS = ("fonts", "fashion_mnist", "emnist", "celeba")  # data.specs.SPECS, in this order
EXPERIMENTS_ENV = "MANIFOLD_ROBUSTNESS_EXPERIMENTS"
PAPER_SIZES = (250, 500, 1000, 2500, 5000, 10000, 20000, 40000)


def base(dataset: str) -> ml_collections.ConfigDict:
    """The paper's settings for ``dataset`` (the ``paper`` preset before dataset specifics); what
    differs between datasets is their :class:`~manifold_robustness.data.specs.DatasetSpec`."""
    from manifold_robustness.data import specs

    spec = specs.get(dataset)
    c = ml_collections.ConfigDict()
    c.dataset = dataset
    c.data = ml_collections.ConfigDict(dict(spec.options))
    c.model = "cnn"
    c.methods = tuple(spec.paper_methods)
    c.sizes = PAPER_SIZES
    c.seeds = (0, 1, 2, 3, 4)
    c.train = ml_collections.ConfigDict(dict(epochs=20, batch_size=100, learning_rate=0.01, lr_decay=0.95,
                                             weight_decay=1e-4, b1=0.5, b2=0.9, eval_batch_size=500))
    c.adversarial = ml_collections.ConfigDict(dict(eps=0.3, eta=0.3, iterations=40, lr=None))
    c.eval = ml_collections.ConfigDict(dict(test_examples=10000, regular_examples=1000, on_manifold_examples=2500,
                                            restarts=5, iterations=40, eps=0.3, eta=0.3, batch=100,
                                            attacks=tuple(spec.paper_attacks),
                                            transfer=dict(examples=10000, epochs=20, seed=1000)))
    c.distances = ml_collections.ConfigDict(dict(methods=("normal",) if spec.distances else (), sizes=(),
                                                 seeds=(0,), examples=1000, iterations=0))
    c.gallery = 8
    c.audit = ml_collections.ConfigDict(dict(examples=200, iteration_factor=10, restart_factor=4,
                                              objectives=("cross_entropy", "margin"), largest_only=False))
    c.vaegan = ml_collections.ConfigDict(dict(epochs=0, channels=64, latent_dim=10, examples=0,
                                               on_learned="learned" in spec.attacked))
    return c


def quick(c: ml_collections.ConfigDict, methods, sizes, *, attacked: int = 500,
          inner_iterations: int | None = None) -> ml_collections.ConfigDict:
    """The shared shape of the laptop presets: ``methods`` at ``sizes``, one seed, the test error on
    2000 test images, ``attacked`` images per attack (the paper's L∞ attack and the on-manifold
    ones; no L2 / C&W / transfer), and optionally fewer inner iterations of adversarial training.
    Returns ``c`` (changed in place)."""
    c.methods = tuple(methods)
    c.eval.attacks = ("linf",)
    c.sizes = tuple(sizes)
    c.seeds = (0,)
    if inner_iterations is not None:
        c.adversarial.iterations = inner_iterations
    c.eval.test_examples = 2000
    c.audit.update(dict(examples=50, iteration_factor=5, restart_factor=2, largest_only=True))
    c.eval.regular_examples = attacked
    c.eval.on_manifold_examples = attacked
    return c


def tiny(c: ml_collections.ConfigDict, methods, *, test_examples: int,
         distance_examples: int) -> ml_collections.ConfigDict:
    """The shared shape of the ``tiny`` presets (tests and notebooks, about a minute; the numbers
    mean nothing): ``methods`` at N ∈ {100, 200}, one seed, 2 epochs, 3 inner iterations, the test
    error on ``test_examples`` images, 20 attacked images with 2 restarts (of the paper's 40
    iterations unless the preset says otherwise), distances on ``distance_examples`` test images
    projected onto the manifold with 20 optimiser steps (a fifth of the paper's) and a gallery of
    4; the paper's L∞ attack and the on-manifold ones only.  Returns ``c`` (changed in place)."""
    c.methods = tuple(methods)
    c.eval.attacks = ("linf",)
    c.sizes = (100, 200)
    c.seeds = (0,)
    c.train.epochs = 2
    c.adversarial.iterations = 3
    c.eval.test_examples = test_examples
    c.eval.regular_examples = 20
    c.eval.on_manifold_examples = 20
    c.eval.restarts = 2
    c.distances.examples = distance_examples
    c.distances.iterations = 20
    c.audit.examples = 0
    c.gallery = 4
    return c


def manifolds(c: ml_collections.ConfigDict) -> tuple[str, ...]:
    """The manifold kinds a config's setting prepares, in the dataset's order: those its methods
    need, those that need no training (their attacks always run), and those whose switch under
    ``vaegan`` is on (``on_learned``: the class-specific VAE-GANs)."""
    from manifold_robustness.data import specs
    from manifold_robustness.manifolds.objects import KINDS
    from manifold_robustness.training import METHODS

    needed = {METHODS.needs(m) for m in c.methods if m in METHODS}
    wanted = []
    for kind in specs.get(c.dataset).manifolds:
        cls = KINDS[kind]
        if kind in needed or not cls.trained or (cls.switch is not None and bool(c.vaegan.get(cls.switch))):
            wanted.append(kind)
    return tuple(wanted)


def check(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Refuse configs that cannot run, saying what is wrong; returns ``c``."""
    from manifold_robustness import models
    from manifold_robustness.data import specs
    from manifold_robustness.manifolds import protocol
    from manifold_robustness.training import METHODS

    spec = specs.get(c.dataset)
    if c.model not in models.ARCHITECTURES:
        raise ValueError(f"unknown model {c.model!r}; known: {', '.join(models.ARCHITECTURES)}")
    unknown = [m for m in c.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(map(repr, unknown))}; known: {', '.join(METHODS)}")
    if not c.methods or not c.sizes or not c.seeds:
        raise ValueError("methods, sizes and seeds must each name at least one value")
    if len(set(c.methods)) != len(c.methods) or len(set(c.sizes)) != len(c.sizes) or len(set(c.seeds)) != len(c.seeds):
        raise ValueError("methods, sizes and seeds must not repeat values")
    for m in c.methods:
        protocol.require(METHODS.needs(m), spec.manifolds, c.dataset, f"training method {m}")
    _check_counts(c)
    if any(int(n) < c.train.batch_size // 2 for n in c.sizes):
        raise ValueError(f"every N in sizes must be >= half a batch ({c.train.batch_size // 2}); got {tuple(c.sizes)}")
    for name in ("test_examples", "regular_examples", "on_manifold_examples", "batch", "restarts"):
        if int(c.eval[name]) < 1:
            raise ValueError(f"eval.{name} must be >= 1; got {c.eval[name]}")
    if c.eval.regular_examples > c.eval.test_examples or c.eval.on_manifold_examples > c.eval.test_examples:
        raise ValueError("eval.regular_examples and eval.on_manifold_examples must not exceed eval.test_examples")
    _check_eval_attacks(c)
    _check_audit(c)
    unknown = [m for m in c.distances.methods if m not in c.methods]
    if unknown:
        raise ValueError(f"distances.methods {unknown} are not among the config's methods {tuple(c.methods)}")
    if c.distances.methods and not manifolds(c):
        raise ValueError(f"distances to the manifold need a manifold, and this config prepares none of {c.dataset!r}'s "
                         f"({', '.join(spec.manifolds)}); set vaegan.on_learned=True (or add an on-manifold method), "
                         "or distances.methods=()")
    return c


def _check_eval_attacks(c: ml_collections.ConfigDict) -> None:
    from manifold_robustness.runner.records import REGULAR_KEYS

    chosen = tuple(c.eval.attacks)
    unknown = [a for a in chosen if a not in REGULAR_KEYS]
    if unknown or len(set(chosen)) != len(chosen):
        raise ValueError(f"eval.attacks {chosen}: each of {', '.join(REGULAR_KEYS)} at most once; "
                         f"unknown: {', '.join(map(repr, unknown)) or 'none'} (on-manifold attacks run for every "
                         "manifold the experiment prepares)")
    if c.distances.methods and "linf" not in chosen:
        raise ValueError("distances to the manifold measure the paper's L∞ adversarial examples: add linf to "
                         "eval.attacks, or set distances.methods=()")
    if "transfer" in chosen:
        t = c.eval.transfer
        for k in ("examples", "epochs"):
            if isinstance(t[k], bool) or not isinstance(t[k], int) or t[k] < 1:
                raise ValueError(f"eval.transfer.{k} must be a whole number >= 1; got {t[k]!r}")
        if int(t.seed) in tuple(int(s) for s in c.seeds):
            raise ValueError(f"eval.transfer.seed {t.seed} is one of the grid's seeds {tuple(c.seeds)}: the source "
                             "model would be a model of the grid (normal training at N = eval.transfer.examples); "
                             "choose another seed")


def _check_audit(c: ml_collections.ConfigDict) -> None:
    from manifold_robustness.attacks.objectives import OBJECTIVES

    a = c.audit
    if isinstance(a.examples, bool) or not isinstance(a.examples, int) or a.examples < 0:
        raise ValueError(f"audit.examples must be a whole number >= 0 (0: no audit); got {a.examples!r}")
    if not a.examples:
        return
    for k in ("iteration_factor", "restart_factor"):
        if not isinstance(a[k], (int, float)) or isinstance(a[k], bool) or a[k] < 1:
            what = "iterations" if k == "iteration_factor" else "restarts"
            raise ValueError(f"audit.{k} = {a[k]!r} would give the audit fewer {what} than the paper attack "
                             f"(eval.{what} = {c.eval[what]}): an audit must be at least as strong; use >= 1")
    unknown = [o for o in a.objectives if o not in OBJECTIVES]
    if unknown or not a.objectives:
        raise ValueError(f"audit.objectives {tuple(a.objectives)}: choose among {', '.join(OBJECTIVES)}")


def _check_counts(c: ml_collections.ConfigDict) -> None:
    """Whole numbers that must be positive (or non-negative) are, else a ValueError naming the key."""
    def whole(name, value, least):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be a whole number >= {least}; got {value!r}")

    from manifold_robustness.training import TrainConfig

    try:
        TrainConfig(**{k: c.train[k] for k in c.train.keys()})  # its own checks, with the key named
    except (TypeError, ValueError) as err:
        raise ValueError(f"train settings: {err}") from None
    for n in c.sizes:
        whole("every N in sizes", n, 1)
    for s in c.seeds:
        whole("every seed in seeds", s, 0)
    whole("gallery", c.gallery, 0)
    whole("adversarial.iterations", c.adversarial.iterations, 0)
    lr = c.adversarial.lr
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
        raise ValueError(f"adversarial.lr must be a number > 0 (or None: the paper's 0.005); got {lr!r}")
    whole("distances.examples", c.distances.examples, 1)
    whole("distances.iterations", c.distances.iterations, 0)  # 0: the manifold's own
    for k in ("epochs", "examples"):  # 0: the paper's epochs / the whole training split
        whole(f"vaegan.{k}", c.vaegan.get(k, 0), 0)


def resolved(c: ml_collections.ConfigDict) -> dict:
    """The config as plain JSON-able data (tuples as lists)."""
    import json

    return json.loads(json.dumps(c.to_dict(), default=list))


def experiments_dirs() -> list[Path]:
    """Folders from $MANIFOLD_ROBUSTNESS_EXPERIMENTS (``os.pathsep``-separated): their ``NAME.py``
    files are found by short name before the package's own configs."""
    import os

    dirs = [Path(p) for p in os.environ.get(EXPERIMENTS_ENV, "").split(os.pathsep) if p]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def known_experiments() -> list[str]:
    """Short names :func:`load` accepts: the package's configs and those in :func:`experiments_dirs`."""
    from manifold_robustness import configs

    own = {m.name for m in pkgutil.iter_modules(configs.__path__) if not m.name.startswith("_")}
    found = {p.stem for d in experiments_dirs() for p in d.glob("*.py") if not p.stem.startswith("_")}
    return sorted(own | found)


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"_mr_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _config_module(name: str):
    """The module behind ``name``: a path ``*.py``, a file in :func:`experiments_dirs` or one of
    the package's configs."""
    path = Path(name)
    if path.suffix == ".py":
        if not path.is_file():
            raise ValueError(f"config file {path} does not exist")
        return _module(path)
    for d in experiments_dirs():
        if (d / f"{name}.py").is_file():
            return _module(d / f"{name}.py")
    if name not in known_experiments():
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(known_experiments())} "
                         f"(or a path to a config file, PATH.py[:PRESET])")
    return importlib.import_module(f"manifold_robustness.configs.{name}")


def load(spec: str, overrides: Iterable[str] = ()) -> ml_collections.ConfigDict:
    """``spec`` = ``NAME[:PRESET]`` (``fonts:quick``; see :func:`known_experiments`) or
    ``PATH.py[:PRESET]``; ``overrides`` = ``key.sub=value`` strings (Python literals; a bare word
    is a string; ``a,b`` is a tuple).  Unknown names, presets and keys list the known ones."""
    name, _, preset = spec.partition(":")
    module = _config_module(name)
    presets = tuple(getattr(module, "PRESETS", ("paper",)))
    preset = preset or presets[0]
    if preset not in presets:
        raise ValueError(f"unknown preset {preset!r} for {Path(name).stem}; known: {', '.join(presets)}")
    c = module.get_config(preset)
    for item in overrides:
        apply_override(c, item)
    return check(c)


def _parse(text: str, current):
    if isinstance(current, (tuple, list)):
        parts = [p for p in text.strip("()[] ").split(",") if p.strip()]
        return tuple(_parse(p.strip(), current[0] if current else "") for p in parts)
    if isinstance(current, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_override(c: ml_collections.ConfigDict, item: str) -> None:
    """Set ``key.sub=value`` in ``c`` (the key must exist; the type must fit)."""
    key, sep, text = item.partition("=")
    if not sep:
        raise ValueError(f"override {item!r} must look like key=value (e.g. sizes=250,1000 or train.epochs=5)")
    parts = key.strip().split(".")
    node = c
    for p in parts[:-1]:
        if p not in node or not isinstance(node[p], ml_collections.ConfigDict):
            raise ValueError(f"unknown config key {key!r}; known at this level: {', '.join(sorted(node.keys()))}")
        node = node[p]
    leaf = parts[-1]
    if leaf not in node:
        raise ValueError(f"unknown config key {key!r}; known at this level: {', '.join(sorted(node.keys()))}")
    value = _parse(text.strip(), node[leaf])
    if isinstance(node[leaf], float) and isinstance(value, int):
        value = float(value)
    if isinstance(node[leaf], (tuple, list)) and node[leaf]:
        kind = type(node[leaf][0])
        value = tuple(float(v) if kind is float and isinstance(v, int) else v for v in value)
        wrong = [v for v in value if type(v) is not kind]
        if wrong:
            raise ValueError(f"override {item!r}: {key} takes {kind.__name__} values (e.g. "
                             f"{key}={','.join(map(str, node[leaf][:2]))}); got {', '.join(map(repr, wrong))}")
    try:
        node[leaf] = value
    except (TypeError, ValueError) as e:
        raise ValueError(f"override {item!r}: {e}") from None
