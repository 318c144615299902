"""Data parallelism over the example axis: a 1-D device mesh named ``"data"`` (DESIGN §3).

Everything here is thin glue over ``jax.sharding``; the programs themselves stay global-view and
the compiler partitions them (the mesh axis is ``AxisType.Auto``).  Because the program is
global-view, reductions over the batch (the loss mean, batch-norm statistics, an attack's early
exit over "all examples done") still run over the *whole* batch: the compiler inserts the
cross-device sums.  Results agree with a single-device run up to the order of float additions.

Three uses:

* training: ``training.train(..., mesh=parallel.data_mesh())`` (or ``mesh="auto"``) shards each
  training batch over the devices; the dataset, parameters and optimiser state are replicated;
* evaluation: ``training.evaluate(..., mesh=mesh)`` does the same for test batches;
* attacks and any other jitted per-example function: put the batch with :func:`shard_rows` and
  everything else (variables, context arrays) with :func:`replicate`, then call the jitted
  function; ``jit`` partitions it from its inputs' shardings::

      mesh = parallel.data_mesh()
      f = jax.jit(lambda v, batch, key: atk(clf.logits_fn(v), batch, key, context))
      batch, n = parallel.pad_rows(batch, mesh)            # only if len(batch) % devices != 0
      res = f(parallel.replicate(variables, mesh), parallel.shard_rows(batch, mesh), key)
      success = res.success[:, :n]                         # drop the padding rows again

  Every array argument must live on the mesh's devices (a committed single-device array next to
  a sharded one is an error in ``jit``); arrays made with ``jnp`` and not yet placed are fine.
  Padding repeats real rows, so per-example results of the real rows are unchanged (an attack's
  early exit waits for the copies exactly as for their originals).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

AXIS = "data"

MeshArg = Mesh | Literal["auto"] | None
FEWER_DEVICES = "give the mesh fewer devices (parallel.data_mesh(devices))"  # a remedy for check_divisible


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with the single axis ``"data"`` over ``devices`` (default: all of ``jax.devices()``).

    The axis type is ``Auto`` (the compiler propagates shardings; ``with_sharding_constraint``
    steers it), not the ``Explicit`` that ``jax.make_mesh`` picks by default, so the library's
    global-view programs run unchanged.
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return Mesh(np.asarray(devices), (AXIS,), axis_types=(AxisType.Auto,))


def resolve_mesh(mesh: MeshArg) -> Mesh | None:
    """Normalise a ``mesh`` argument: ``None`` → None (no sharding, the single-device program);
    ``"auto"`` → :func:`data_mesh` over all devices when ``jax.device_count() > 1``, else None;
    a :class:`Mesh` → itself, after checking it is 1-D with the axis ``"data"``."""
    if mesh is None:
        return None
    if isinstance(mesh, str):
        if mesh != "auto":
            raise ValueError(f"mesh must be None, 'auto' or a jax.sharding.Mesh; got {mesh!r}")
        return data_mesh() if jax.device_count() > 1 else None
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be None, 'auto' or a jax.sharding.Mesh; got {type(mesh).__name__}")
    if tuple(mesh.axis_names) != (AXIS,):
        raise ValueError(f"expected a 1-D mesh with the axis {AXIS!r} (see parallel.data_mesh); got axes {mesh.axis_names}")
    return mesh


def num_devices(mesh: Mesh) -> int:
    """Devices along the ``"data"`` axis."""
    return int(mesh.shape[AXIS])


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over ``"data"``, other axes whole: an array [B, ...] → [B / D, ...] per device."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """A full copy on every device of the mesh."""
    return NamedSharding(mesh, PartitionSpec())


def pad_to_multiple(n: int, mesh: Mesh) -> int:
    """The smallest multiple of the device count that is ≥ ``n`` (``n`` itself when it divides)."""
    d = num_devices(mesh)
    return -(-int(n) // d) * d


def check_divisible(
    size: int, mesh: Mesh, what: str = "number of rows", remedy: str = "pad the rows (parallel.pad_rows)"
) -> None:
    """Raise a ValueError that says what to do when ``size`` rows cannot split evenly over the mesh
    (``what`` names the size, ``remedy`` is the fix suggested besides a multiple and mesh=None)."""
    d = num_devices(mesh)
    if size % d:
        lower, upper = size - size % d, pad_to_multiple(size, mesh)
        raise ValueError(
            f"{what} {size} is not a multiple of the {d} devices of the data mesh; use a multiple of {d} "
            f"(e.g. {lower or upper} or {upper}), {remedy}, or pass mesh=None"
        )


def _rows(tree: Any) -> int:
    sizes = {int(np.shape(x)[0]) if np.ndim(x) else None for x in jax.tree.leaves(tree)}
    if None in sizes:
        raise ValueError("every array in a batch needs a leading example axis; got a scalar")
    if len(sizes) != 1:
        raise ValueError(f"all arrays in a batch must have the same number of rows; got {sorted(sizes)}")
    return sizes.pop()


def shard_rows(tree: Any, mesh: Mesh) -> Any:
    """``device_put`` a pytree of per-example arrays (leading axis N = examples, all the same N)
    split along that axis over the mesh: each device holds N / D rows.

    N must be a multiple of the device count D (else a ValueError that says how to fix it; see
    :func:`pad_rows`).
    """
    if not jax.tree.leaves(tree):
        return tree
    check_divisible(_rows(tree), mesh)
    return _put(tree, batch_sharding(mesh))


def replicate(tree: Any, mesh: Mesh) -> Any:
    """``device_put`` a pytree (parameters, optimiser state, constant arrays) whole onto every device."""
    return _put(tree, replicated(mesh))


def _put(tree: Any, sharding: NamedSharding) -> Any:
    """``jax.device_put``.  Onto a mesh over several processes, ``device_put`` takes only values
    every process holds alike (host arrays, arrays not yet committed to a device; it checks they
    are equal everywhere), so committed arrays and PRNG keys (whose key data is) go through the
    host; arrays already on the mesh stay where they are."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def one(x):
        if not isinstance(x, jax.Array) or (not x.is_fully_addressable):
            return jax.device_put(x, sharding)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.device_put(np.asarray(jax.random.key_data(x)), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(np.asarray(x), sharding)

    return jax.tree.map(one, tree)


def pad_rows(tree: Any, mesh: Mesh) -> tuple[Any, int]:
    """Pad a pytree of per-example arrays [N, ...] to [pad_to_multiple(N), ...] by repeating rows
    from the start (wrap-around, as the training loop fills its last batch), and return it with N.

    Slice per-example results back with ``[:N]`` (mind leading axes such as restarts).
    """
    n = _rows(tree)
    if n == 0:
        raise ValueError("cannot pad an empty batch")
    target = pad_to_multiple(n, mesh)
    if target == n:
        return tree, n
    idx = np.resize(np.arange(n), target)
    return jax.tree.map(lambda x: x[idx], tree), n


def constrain_rows(tree: Any, mesh: Mesh | None) -> Any:
    """Inside ``jit``: ask the compiler to split the leading axis of every array over the mesh.

    Identity when ``mesh`` is None or a leaf's leading size does not divide (the compiler then
    chooses).  Under ``vmap`` the constraint refers to the unbatched shape, so the vmapped axis
    (e.g. seeds) stays whole on every device and the example axis is the one split.
    """
    if mesh is None:
        return tree
    d = num_devices(mesh)
    sharding = batch_sharding(mesh)

    def one(x):
        if np.ndim(x) == 0 or x.shape[0] % d:
            return x
        return jax.lax.with_sharding_constraint(x, sharding)

    return jax.tree.map(one, tree)


def spans_processes(mesh: Mesh | None) -> bool:
    """Whether the mesh holds devices of other processes (``jax.distributed``: one program over
    several hosts; every process must then run it, and results are gathered with :func:`to_host`)."""
    return mesh is not None and any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def to_host(tree: Any) -> Any:
    """``jax.device_get``, also for arrays whose rows live on several processes: those are gathered
    from all of them (``multihost_utils.process_allgather``; every process must call it, as it
    calls the program that made them); a fully replicated array is read from a local copy."""
    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return x

    return jax.device_get(jax.tree.map(one, tree))
