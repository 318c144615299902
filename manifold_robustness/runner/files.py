"""The results store's files: JSON and orbax trees written atomically, manifests that find
damage, a write probe, and the names of staging leftovers (no knowledge of runs here).

Every file is written to a temporary name beside its target and renamed into place; an orbax tree
is written into a staging folder renamed when complete.  A manifest records each file's size and
CRC-32 (the FONTS cache's :func:`~manifold_robustness.data.cache.file_crc32`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from manifold_robustness import distributed
from manifold_robustness.data.cache import file_crc32


def manifest(folder: Path, names: Iterable[str]) -> dict[str, dict]:
    """{path relative to ``folder``: {"size", "crc32"}} of every file in ``names`` (files or folders)."""
    out = {}
    for name in names:
        top = folder / name
        for p in sorted([top] if top.is_file() else top.rglob("*")):
            if p.is_file():
                out[p.relative_to(folder).as_posix()] = {"size": p.stat().st_size, "crc32": file_crc32(p)}
    return out


def damage(folder: Path, expected: dict[str, dict]) -> str | None:
    """What differs between the files under ``folder`` and a :func:`manifest`, or None."""
    for name, spec in expected.items():
        p = folder / name
        if not p.is_file():
            return f"{p} is missing"
        size = p.stat().st_size
        if size != spec["size"]:
            return f"{p} has {size} bytes where {spec['size']} were written (truncated or overwritten)"
        if file_crc32(p) != spec["crc32"]:
            return f"{p} fails its checksum (the file was altered or damaged)"
    return None


def writable(folder: Path, fix: str) -> Path:
    """Create ``folder`` and check a file can be written there; a PermissionError that names the
    folder, the reason (read-only file system, no permission, disk full) and ``fix`` otherwise."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as err:
        raise PermissionError(f"{folder} is not writable ({err.strerror or err}); {fix}") from None
    return folder


def read_json(path: Path, what: str, fix: str, error: type[Exception]) -> Any:
    """JSON from ``path``; a file that is not valid JSON raises ``error`` naming it and the fix."""
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise error(f"{path} ({what}) is unreadable: {err}; {fix}") from None


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "/"))
        else:
            out[name] = v
    return out


def unflatten(flat: dict[str, Any]) -> dict:
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
        flat = {k: np.asarray(v) for k, v in flatten(tree).items()}
        empty = {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in flat.items() if v.size == 0}
        data = unflatten({k: v for k, v in flat.items() if v.size})
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    staging.mkdir(parents=True)
    if data:
        ckpt = ocp.StandardCheckpointer(**distributed.orbax_options())
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

    ckpt = ocp.StandardCheckpointer(**distributed.orbax_options(read=True))
    if like is not None:
        out = ckpt.restore(path / "data", jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
        ckpt.close()
        return out
    flat = {}
    if (path / "data").exists():
        flat = {k: np.asarray(v) for k, v in flatten(ckpt.restore(path / "data")).items()}
    ckpt.close()
    for k, meta in json.loads((path / "empty.json").read_text()).items():
        flat[k] = np.zeros(meta["shape"], np.dtype(meta["dtype"]))
    return unflatten(flat)


# staging names of save_tree (".model.<hex>") and write_json (".<name>.<hex>.tmp"), and claims
# renamed aside on take-over ("<name>.expired-<hex>")
LEFTOVER = re.compile(r"^\.[\w.-]+\.[0-9a-f]{32}(\.tmp)?$|\.expired-[0-9a-f]{32}$")


def prune_empty(folder: Path, root: Path) -> None:
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone)
            return
        folder = folder.parent
