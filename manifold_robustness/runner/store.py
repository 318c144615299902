"""The results store: one folder per experiment, one sub-folder per run, everything orbax + JSON.

Layout under the results root::

    experiment.json                      resolved config, package versions, git commit (first writer)
    runs/<dataset>/<method>/n<N>/seed<S>/
        model/                           orbax: the trained variables and optimiser state of this seed
        result/                          orbax: per-example arrays (see runner.records)
        metrics.json                     JSON metrics (see runner.records)
        run.json                         written last (the run is finished iff it exists): the resolved
                                         config, package versions and git commit of this run
    train/<dataset>/<method>/n<N>/seeds<S1-S2-…>/   epoch checkpoints of a group being trained
                                         (all seeds of one (method, N) train together); removed
                                         once every seed of the group is finished

A root written by one config refuses another (the difference is listed); only settings that do not
change results (none so far) may differ.  Every file is written to a temporary name and renamed,
and ``run.json`` comes last, so a crash never leaves a run that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from manifold_robustness.runner.records import RunKey, RunRecord
from manifold_robustness.training.checkpoints import config_diff

STATUSES = ("done", "partial", "pending")


class ConfigMismatchError(ValueError):
    """The results root was written by another config."""


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + "/"))
        else:
            out[name] = v
    return out


def _unflatten(flat: dict[str, Any]) -> dict:
    tree: dict = {}
    for name, v in flat.items():
        *parents, leaf = name.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return tree


def write_json(path: Path, obj: Any) -> None:
    """Atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=_json_default))
    os.replace(tmp, path)


def _json_default(x):
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, tuple):
        return list(x)
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def save_tree(path: Path, tree: Any, *, raw: bool = False) -> None:
    """Save a nested dict of arrays with orbax, atomically: everything is written to a staging
    folder that is renamed into place when complete; an older copy at ``path`` is replaced.
    Empty arrays (orbax refuses them) are recorded by shape and dtype in ``empty.json`` beside the
    data.  ``raw``: save any pytree as it is (model and optimiser state; no empty arrays)."""
    import orbax.checkpoint as ocp

    if raw:
        data, empty = tree, {}
    else:
        flat = {k: np.asarray(v) for k, v in _flatten(tree).items()}
        empty = {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in flat.items() if v.size == 0}
        data = _unflatten({k: v for k, v in flat.items() if v.size})
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    if data:
        ckpt = ocp.StandardCheckpointer()
        ckpt.save(staging / "data", data)
        ckpt.wait_until_finished()
        ckpt.close()
    write_json(staging / "empty.json", empty)
    if path.exists():
        shutil.rmtree(path)
    os.replace(staging, path)


def load_tree(path: Path, like: Any = None) -> Any:
    """Restore what :func:`save_tree` wrote; ``like``: a pytree with the structure, shapes and
    dtypes to restore into (needed for optimiser states; without it, nested dicts of numpy)."""
    import jax
    import orbax.checkpoint as ocp

    ckpt = ocp.StandardCheckpointer()
    if like is not None:
        out = ckpt.restore(path / "data", jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
        ckpt.close()
        return out
    flat = {}
    if (path / "data").exists():
        flat = {k: np.asarray(v) for k, v in _flatten(ckpt.restore(path / "data")).items()}
    ckpt.close()
    for k, meta in json.loads((path / "empty.json").read_text()).items():
        flat[k] = np.zeros(meta["shape"], np.dtype(meta["dtype"]))
    return _unflatten(flat)


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for pkg in ("manifold-robustness", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "ml_collections"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def git_commit() -> str | None:
    """The source checkout's commit (with ``+dirty`` for uncommitted changes), None outside git."""
    src = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, timeout=10)
        if sha.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=src,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


class ResultsStore:
    """A results root.  ``open(config)`` claims it for a config (or checks it is the same one)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()  # orbax refuses relative paths

    # -- the experiment -------------------------------------------------------------------------
    @property
    def experiment_path(self) -> Path:
        return self.root / "experiment.json"

    def experiment(self) -> dict | None:
        """{"config": …, "versions": …, "git_commit": …, "created": …} or None for a new root."""
        if not self.experiment_path.exists():
            return None
        return json.loads(self.experiment_path.read_text())

    def open(self, config: dict) -> "ResultsStore":
        """Record ``config`` (resolved, JSON-able) for a new root; refuse a root written by another."""
        stored = self.experiment()
        if stored is None:
            write_json(self.experiment_path, {"config": config, "versions": versions(), "git_commit": git_commit(),
                                              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            return self
        diff = config_diff(_flatten(stored["config"]), _flatten(json.loads(json.dumps(config, default=list))))
        if diff:
            raise ConfigMismatchError(
                f"{self.root} holds results of another config; refusing to mix them.\n  " + "\n  ".join(diff)
                + "\nUse another --results folder, or delete this one to start over.")
        return self

    # -- runs -----------------------------------------------------------------------------------
    def run_dir(self, key: RunKey) -> Path:
        return self.root / "runs" / key.name

    def train_dir(self, dataset: str, method: str, n: int, seeds: Iterable[int]) -> Path:
        return self.root / "train" / dataset / method / f"n{n}" / ("seeds" + "-".join(str(s) for s in seeds))

    def is_done(self, key: RunKey) -> bool:
        return (self.run_dir(key) / "run.json").exists()

    def status(self, keys: Iterable[RunKey]) -> dict[RunKey, str]:
        """done: finished; partial: started (epoch checkpoints or half-written files); pending."""
        out = {}
        train = self.root / "train"
        started = {(p.parent.parent.relative_to(train).as_posix(), p.parent.name) for p in train.glob("*/*/n*/seeds*/steps")} \
            if train.exists() else set()
        for key in keys:
            group = f"{key.dataset}/{key.method}/n{key.n}"
            if self.is_done(key):
                out[key] = "done"
            elif self.run_dir(key).exists() or any(g == group and str(key.seed) in s[5:].split("-") for g, s in started):
                out[key] = "partial"
            else:
                out[key] = "pending"
        return out

    def save_run(self, key: RunKey, *, model: dict, metrics: dict, arrays: dict, info: dict) -> None:
        """Write a finished run: model and arrays (orbax), metrics, then ``run.json`` last."""
        d = self.run_dir(key)
        (d / "run.json").unlink(missing_ok=True)
        save_tree(d / "model", model, raw=True)
        save_tree(d / "result", _unflatten(arrays))
        write_json(d / "metrics.json", metrics)
        exp = self.experiment() or {}
        write_json(d / "run.json", {"key": key.as_dict(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                    "config": exp.get("config"), "versions": versions(), "git_commit": git_commit(), **info})

    def load_model(self, key: RunKey, like: Any = None) -> dict:
        """The run's ``{"variables": …, "opt_state": …}`` (``like``: see :func:`load_tree`)."""
        return load_tree(self.run_dir(key) / "model", like)

    def record(self, key: RunKey, arrays: bool = True) -> RunRecord:
        d = self.run_dir(key)
        if not self.is_done(key):
            raise FileNotFoundError(f"run {key.name} is not finished in {self.root}")
        metrics = json.loads((d / "metrics.json").read_text())
        return RunRecord(key, metrics, _flatten(load_tree(d / "result")) if arrays else {})

    def finished(self) -> list[RunKey]:
        runs = self.root / "runs"
        if not runs.exists():
            return []
        return sorted(RunKey.parse(str(p.parent.relative_to(runs))) for p in runs.glob("*/*/n*/seed*/run.json"))

    def records(self, arrays: bool = True) -> list[RunRecord]:
        """Every finished run's record (sorted by key)."""
        return [self.record(k, arrays) for k in self.finished()]
