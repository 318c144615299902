"""Orbax checkpoints for training state, guarded by the config that wrote them.

A checkpoint folder holds ``config.json`` (what the run is: architecture, method, data size,
seeds, optimiser settings, …) and one orbax step per saved epoch.  Opening a folder with a
different config raises :class:`IncompatibleCheckpointError` listing the differences, so a changed
hyperparameter can never silently reuse stale weights.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class IncompatibleCheckpointError(ValueError):
    """The folder holds checkpoints of a run with another config."""


def _normalise(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def config_diff(old: dict, new: dict) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: stored {old.get(k, '<absent>')!r}, requested {new.get(k, '<absent>')!r}" for k in keys if old.get(k) != new.get(k)]


class CheckpointStore:
    """Save/restore a training-state pytree per epoch, keeping the last ``max_to_keep``."""

    def __init__(self, directory: str | os.PathLike, config: dict, max_to_keep: int = 2):
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
            self.directory / "steps", options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restore ``step`` (default: latest) into the structure, shapes and dtypes of ``like``."""
        step = self.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def save(self, step: int, state: Any) -> None:
        self.manager.save(step, args=ocp.args.StandardSave(state))

    def close(self) -> None:
        """Wait for asynchronous saves (a notebook would otherwise hang on exit) and release."""
        self.manager.wait_until_finished()
        self.manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
