"""Orbax checkpoints for training state, guarded by the config that wrote them.

A checkpoint folder holds ``config.json`` (what the run is: architecture, method, data size,
seeds, optimiser settings, …) and one orbax step per saved epoch.  Epochs are saved by time, not
all of them: the first of each call (a folder that cannot be written fails within one epoch), then
one whenever :data:`SAVE_INTERVAL_S` seconds have passed since the last save, and the last epoch
always — so an interrupted run loses at most that much work, and a run of many short epochs does
not spend its time writing checkpoints.  Opening a folder with a different config raises
:class:`IncompatibleCheckpointError` listing the differences, so a changed hyperparameter can never
silently reuse stale weights.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from manifold_robustness import distributed


# At most this much training is lost when a run is interrupted; one save costs ~0.1 s on 2 CPU cores
# for the tiny models and a few seconds for the paper's, next to epochs of seconds to minutes.
SAVE_INTERVAL_S = 60.0
_now = time.monotonic  # the clock of the save policy


class IncompatibleCheckpointError(ValueError):
    """The folder holds checkpoints of a run with another config."""


def _normalise(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def config_diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: stored {old.get(k, '<absent>')!r}, requested {new.get(k, '<absent>')!r}" for k in keys if old.get(k) != new.get(k)]


class CheckpointStore:
    """Save/restore a training-state pytree per epoch, keeping the last ``max_to_keep``.

    ``interval_s`` (default :data:`SAVE_INTERVAL_S`) is the time between saves that
    :meth:`save` keeps; 0 saves every epoch."""

    def __init__(self, directory: str | os.PathLike, config: dict, max_to_keep: int = 2,
                 interval_s: float | None = None):
        self.interval_s = SAVE_INTERVAL_S if interval_s is None else float(interval_s)
        self._last_save: float | None = None  # monotonic time of this store's last save
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        config = _normalise(config)
        meta = self.directory / "config.json"
        if meta.exists():
            stored = json.loads(meta.read_text())
            diff = config_diff(stored, config)
            if diff:
                raise IncompatibleCheckpointError(
                    f"{self.directory} holds checkpoints written by another config; refusing to load them.\n  "
                    + "\n  ".join(diff)
                    + "\nUse another checkpoint folder, or delete this one to start over."
                )
        else:
            tmp = meta.with_suffix(".tmp")
            tmp.write_text(json.dumps(config, indent=1, sort_keys=True))
            os.replace(tmp, meta)
        self.manager = ocp.CheckpointManager(
            self.directory / "steps", options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                                                           **distributed.orbax_options())
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restore ``step`` (default: latest) into the structure, shapes and dtypes of ``like``."""
        step = self.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def save(self, step: int, state: Any, *, last: bool = False) -> bool:
        """Save ``state`` as ``step`` when it is due → whether it was saved: the first call on this
        store, ``last`` (the run's final epoch), or ``interval_s`` after the previous save."""
        now = _now()
        if not (last or self._last_save is None or now - self._last_save >= self.interval_s):
            return False
        self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self._last_save = now
        return True

    def close(self) -> None:
        """Wait for asynchronous saves (a notebook would otherwise hang on exit) and release."""
        self.manager.wait_until_finished()
        self.manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
