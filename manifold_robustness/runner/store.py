"""The results store: one folder per experiment, one sub-folder per run, everything orbax + JSON.

Layout under the results root::

    experiment.json                      resolved config, package versions, git commit (first writer)
    runs/<dataset>/<method>/n<N>/seed<S>/
        model/                           orbax: the trained variables and optimiser state of this seed
        result/                          orbax: per-example arrays (see runner.records)
        metrics.json                     JSON metrics (see runner.records)
        run.json                         written last (the run is finished once it exists): the resolved
                                         config, package versions, git commit and writer of this run and
                                         its manifest (size and CRC-32 of every file above)
    train/<dataset>/<method>/n<N>/seeds<S1-S2-…>/   epoch checkpoints of a group being trained
                                         (all seeds of one (method, N) train together); removed
                                         once every seed of the group is finished
    claims/<dataset>/<method>/n<N>.json  the claim of the worker training that group, and
    claims/vaegan.json                   of the one training the VAE-GANs (manifold_robustness.claims)

A root written by one config refuses another (the difference is listed); only settings that do not
change results (none so far) may differ, and a setting added to the configs since the root was
written may be absent there (:data:`ADDED_SETTINGS`: what its absence meant).  Every file is
written to a temporary name and renamed, and ``run.json`` comes last, so a crash never leaves a
run that looks finished.  A finished run whose files no longer match its manifest (emptied,
truncated, bit-flipped, missing) or whose ``run.json`` is unreadable is *damaged*:
:meth:`ResultsStore.status` says so, the runner redoes it, and reading it raises
:class:`DamagedRunError` naming the file (runs written before manifests existed are trusted as
they are).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable

from manifold_robustness.runner import files
from manifold_robustness.runner.records import RunKey, RunRecord
from manifold_robustness.training.checkpoints import config_diff

STATUSES = ("done", "damaged", "partial", "pending")
RUN_FILES = ("model", "result", "metrics.json")  # what a manifest covers (run.json holds it)


class ConfigMismatchError(ValueError):
    """The results root was written by another config."""


class DamagedRunError(ValueError):
    """A finished run's files do not match its manifest, or cannot be read."""


class DamagedStoreError(ValueError):
    """The results root's own ``experiment.json`` cannot be read."""


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


# Settings added to the configs after results folders were first written, each with the value that
# does what a folder written without it did: a folder without the setting is not "another config"
# for that value (and is for any other).
ADDED_SETTINGS = {"distances/iterations": 0}  # 0: the manifold's own projection, as before


def with_added_settings(config: dict) -> dict:
    """A stored config with each of :data:`ADDED_SETTINGS` it lacks, at what its absence meant."""
    out = json.loads(json.dumps(config, default=list))  # a copy
    for path, value in ADDED_SETTINGS.items():
        *parents, leaf = path.split("/")
        node = out
        for name in parents:
            node = node.setdefault(name, {})
        node.setdefault(leaf, value)
    return out


class ResultsStore:
    """A results root.  ``open(config)`` claims it for a config (or checks it is the same one)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).absolute()  # orbax refuses relative paths
        for p in (self.root, *self.root.parents):
            if p.exists() and not p.is_dir():
                where = "is a file" if p == self.root else f"lies under the file {p}"
                raise ValueError(f"results folder {self.root} {where}; choose a folder (--results) that is "
                                 "not a file and not under one")
            if p.exists():
                break

    # -- the experiment -------------------------------------------------------------------------
    @property
    def experiment_path(self) -> Path:
        return self.root / "experiment.json"

    def experiment(self) -> dict | None:
        """{"config": …, "versions": …, "git_commit": …, "created": …} or None for a new root."""
        if not self.experiment_path.exists():
            return None
        exp = files.read_json(self.experiment_path, "the config of this results folder",
                        "restore it from a backup, or copy the \"config\" of any runs/**/run.json into "
                        "{\"config\": …} there", error=DamagedStoreError)
        if not isinstance(exp, dict) or not isinstance(exp.get("config"), dict):
            raise DamagedStoreError(f"{self.experiment_path} holds no \"config\"; restore it from a backup")
        return exp

    def check_config(self, config: dict) -> dict | None:
        """Refuse a root written by another config (reads only); returns the stored experiment.
        A setting added to the configs after the root was written reads as :data:`ADDED_SETTINGS`
        says."""
        stored = self.experiment()
        if stored is None:
            return None
        diff = config_diff(files.flatten(with_added_settings(stored["config"])),
                           files.flatten(with_added_settings(config)))
        if diff:
            raise ConfigMismatchError(
                f"{self.root} holds results of another config; refusing to mix them.\n  " + "\n  ".join(diff)
                + "\nUse another --results folder, or delete this one to start over.")
        return stored

    def open(self, config: dict) -> "ResultsStore":
        """Record ``config`` (resolved, JSON-able) for a new root; refuse a root written by another.
        Check the config (and everything else a run needs) first: this is the root's first write."""
        new = self.check_config(config) is None
        files.writable(self.root, "choose a writable --results folder")
        if new:
            files.write_json(self.experiment_path, {"config": config, "versions": versions(), "git_commit": git_commit(),
                                                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return self

    # -- runs -----------------------------------------------------------------------------------
    def run_dir(self, key: RunKey) -> Path:
        return self.root / "runs" / key.name

    def train_dir(self, dataset: str, method: str, n: int, seeds: Iterable[int]) -> Path:
        return self.root / "train" / dataset / method / f"n{n}" / ("seeds" + "-".join(str(s) for s in seeds))

    def damage(self, key: RunKey) -> str | None:
        """Why the finished run ``key`` is damaged (one line naming the file), or None when it is
        intact (checked against its manifest) or not finished."""
        path = self.run_dir(key) / "run.json"
        if not path.exists():
            return None
        try:
            info = files.read_json(path, "the run's record", "", error=DamagedRunError)
        except DamagedRunError as err:
            return str(err).rstrip("; ")
        if not isinstance(info, dict) or info.get("key") != key.as_dict():
            return f"{path} does not describe run {key.name}"
        if "manifest" not in info:  # written before manifests: trusted as it is
            return None
        return files.damage(self.run_dir(key), info["manifest"])

    def claim_path(self, name: str) -> Path:
        """The claim file of a group (``fonts/normal/n250``) or of the VAE-GANs (``vaegan``)."""
        return self.root / "claims" / f"{name}.json"

    def remove_train_dir(self, dataset: str, method: str, n: int, seeds: Iterable[int]) -> None:
        """Drop a finished group's epoch checkpoints and the folders they leave empty."""
        d = self.train_dir(dataset, method, n, seeds)
        shutil.rmtree(d, ignore_errors=True)
        files.prune_empty(d.parent, self.root)

    def clean_leftovers(self, say=None) -> list[Path]:
        """Remove what killed writers left: staging folders and temporary files, expired claims
        set aside, empty training folders; only those older than the oldest live claim, so no
        live worker's files go.  Returns what was removed."""
        from manifold_robustness import claims

        before = claims.oldest_live(self.root / "claims")
        gone = []
        for p in sorted(self.root.rglob(".*")) + sorted(self.root.glob("claims/**/*.expired-*")):
            if p.exists() and files.LEFTOVER.match(p.name) and p.lstat().st_mtime < before:
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
                gone.append(p)
        # deepest first, judged by their times before this pass empties them
        dirs = [(d, d.stat().st_mtime) for d in (self.root / "train").glob("**/") if d.is_dir()]
        for d, mtime in sorted(dirs, key=lambda e: -len(e[0].parts)):
            if mtime < before and not any(d.iterdir()):
                d.rmdir()
                gone.append(d)
        if gone and say is not None:
            say(f"removed {len(gone)} leftover(s) of interrupted writers: " + ", ".join(
                p.relative_to(self.root).as_posix() for p in gone[:3]) + (", …" if len(gone) > 3 else ""))
        return gone

    def is_done(self, key: RunKey) -> bool:
        """Finished and intact."""
        return (self.run_dir(key) / "run.json").exists() and self.damage(key) is None

    def status(self, keys: Iterable[RunKey]) -> dict[RunKey, str]:
        """done: finished and intact; damaged: finished, but its files no longer match its
        manifest (see :meth:`damage`); partial: started (epoch checkpoints or half-written files);
        pending."""
        out = {}
        train = self.root / "train"
        started = {(p.parent.parent.relative_to(train).as_posix(), p.parent.name) for p in train.glob("*/*/n*/seeds*/steps")} \
            if train.exists() else set()
        for key in keys:
            group = f"{key.dataset}/{key.method}/n{key.n}"
            if (self.run_dir(key) / "run.json").exists():
                out[key] = "damaged" if self.damage(key) else "done"
            elif self.run_dir(key).exists() or any(g == group and str(key.seed) in s[5:].split("-") for g, s in started):
                out[key] = "partial"
            else:
                out[key] = "pending"
        return out

    def save_run(self, key: RunKey, *, model: dict, metrics: dict, arrays: dict, info: dict) -> None:
        """Write a finished run: model and arrays (orbax), metrics, then ``run.json`` last."""
        d = self.run_dir(key)
        (d / "run.json").unlink(missing_ok=True)
        files.save_tree(d / "model", model, raw=True)
        files.save_tree(d / "result", files.unflatten(arrays))
        files.write_json(d / "metrics.json", metrics)
        exp = self.experiment() or {}
        files.write_json(d / "run.json", {"key": key.as_dict(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                    "config": exp.get("config"), "versions": versions(), "git_commit": git_commit(),
                                    "worker": worker(), "manifest": files.manifest(d, RUN_FILES), **info})

    def _checked(self, key: RunKey) -> Path:
        """The run's folder, once it is known to be finished and intact (else a one-line error)."""
        if not (self.run_dir(key) / "run.json").exists():
            raise FileNotFoundError(f"run {key.name} is not finished in {self.root}")
        why = self.damage(key)
        if why:
            raise DamagedRunError(f"run {key.name} is damaged: {why}. `experiment run` on this folder "
                                  "redoes it (its other runs are kept)")
        return self.run_dir(key)

    def load_model(self, key: RunKey, like: Any = None) -> dict:
        """The run's ``{"variables": …, "opt_state": …}`` (``like``: see :func:`files.load_tree`)."""
        return _reading(self._checked(key) / "model", lambda p: files.load_tree(p, like))

    def record(self, key: RunKey, arrays: bool = True) -> RunRecord:
        d = self._checked(key)
        metrics = files.read_json(d / "metrics.json", "the run's metrics", "`experiment run` on this folder redoes the run",
                                  error=DamagedRunError)
        return RunRecord(key, metrics, files.flatten(_reading(d / "result", files.load_tree)) if arrays else {})

    def finished(self) -> list[RunKey]:
        """Every run with a ``run.json`` (intact or damaged), sorted."""
        runs = self.root / "runs"
        if not runs.exists():
            return []
        return sorted(RunKey.parse(str(p.parent.relative_to(runs))) for p in runs.glob("*/*/n*/seed*/run.json"))

    def records(self, arrays: bool = True, damaged: dict | None = None) -> list[RunRecord]:
        """Every finished, intact run's record (sorted by key); a damaged run is left out and, with
        ``damaged`` (a dict), recorded there as ``{key: why}``."""
        out = []
        for key in self.finished():
            try:
                out.append(self.record(key, arrays))
            except DamagedRunError as err:
                if damaged is None:
                    raise
                damaged[key] = str(err)
        return out


def _reading(path: Path, load):
    """``load(path)``, with a failure to read what orbax wrote turned into a one-line error (for runs
    written before manifests, whose damage is only found on reading)."""
    try:
        return load(path)
    except (OSError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise DamagedRunError(f"{path} cannot be read ({first}); `experiment run` on this folder redoes "
                              "the run") from None


def worker() -> dict:
    """Who is writing: {"host", "pid"} (recorded in each run.json, and in claims)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}
