"""The one loop that evaluates a compiled per-example program over many rows (shell code).

>>> out = evaluate.over_rows(fn, params, rows, key, chunk=100, axes={"success": 1})

``fn(params, batch, key) -> dict of arrays`` is a jitted program of a fixed batch size (an
attack with its success mask, a projection); ``rows`` a dict of per-example numpy arrays with
one leading length.  The rows run in chunks of ``chunk``; the last chunk is padded by repeating
its final row, so one compiled program serves every chunk, and chunk ``i`` gets the key
``fold_in(key, i)``.  On a mesh the chunk grows to a multiple of its devices, the rows are split
over them and ``params`` replicated.  Outputs are gathered to the host, the padding dropped and
the chunks concatenated along each output's example axis (``axes``: name → axis, default 0; an
attack's ``success`` is [restarts, examples], axis 1).  The runner's attacks, the ``attack``
command and the distance measurement all run through here.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import numpy as np

__all__ = ["over_rows", "pad_to", "fitted_chunk", "MIN_CHUNK"]


def pad_to(rows: Mapping[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Pad every array's leading axis to ``size`` by repeating its last row (edge mode)."""
    out = {}
    for k, a in rows.items():
        a = np.asarray(a)
        m = a.shape[0]
        out[k] = np.pad(a, [(0, size - m)] + [(0, 0)] * (a.ndim - 1), mode="edge") if m < size else a
    return out


# The smallest fitted chunk: any count of rows up to it runs in one compiled program (a run's few
# successful adversarial examples, whose count differs from run to run, compile once, not per count).
MIN_CHUNK = 64


def fitted_chunk(n: int, chunk: int) -> int:
    """``chunk``, or for fewer rows the next power of two ≥ n and ≥ :data:`MIN_CHUNK` (few
    programs, little padding)."""
    return min(int(chunk), max(1 << max(int(n) - 1, 0).bit_length(), MIN_CHUNK))


def _length(rows: Mapping[str, np.ndarray]) -> int:
    sizes = {int(np.shape(v)[0]) for v in rows.values()}
    if len(sizes) != 1:
        raise ValueError(f"every per-example array must have the same number of rows; got {sorted(sizes)}")
    return sizes.pop()


def over_rows(fn: Callable[[Any, dict, jax.Array], dict], params: Any, rows: Mapping[str, np.ndarray], key: jax.Array,
              *, chunk: int, axes: Mapping[str, int] | None = None, mesh=None, desc: str | None = None,
              unit: str = "img") -> dict[str, np.ndarray]:
    """Run ``fn(params, batch, key)`` over all ``rows`` in padded chunks (see the module
    docstring) → each output concatenated over the real rows.  ``desc``: show a progress bar."""
    if chunk < 1:
        raise ValueError(f"chunk must be positive; got {chunk}")
    axes = dict(axes or {})
    n = _length(rows)
    size = chunk
    if mesh is not None:  # every input on the mesh: rows split over its devices, the rest replicated
        from manifold_robustness import parallel

        size = parallel.pad_to_multiple(chunk, mesh)
        params = parallel.replicate(params, mesh)
    bar = None
    if desc is not None:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=desc, unit=unit, leave=False)
    parts: dict[str, list] = {}
    for i, start in enumerate(range(0, n, chunk)):
        part = {k: np.asarray(v[start : start + chunk]) for k, v in rows.items()}
        m = min(chunk, n - start)
        batch = pad_to(part, size)
        if mesh is not None:
            batch = parallel.shard_rows(batch, mesh)
        out = fn(params, batch, jax.random.fold_in(key, i))
        out = jax.device_get(out) if mesh is None else parallel.to_host(out)  # rows on other hosts too
        for k, v in out.items():
            parts.setdefault(k, []).append(np.take(np.asarray(v), np.arange(m), axis=axes.get(k, 0)))
        if bar is not None:
            bar.update(m)
    if bar is not None:
        bar.close()
    return {k: np.concatenate(v, axis=axes.get(k, 0)) for k, v in parts.items()}
