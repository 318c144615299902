"""Several processes (hosts), the way JAX scales out: ``jax.distributed`` (shell code).

Two ways to use several processes, each the natural one for its kind of command:

* **one program over every process's devices** (``train``, ``attack``): every process calls
  :func:`initialize`, which connects it to the others through ``jax.distributed.initialize``
  (a coordinator address, the number of processes and this one's index; or detected from the
  cluster: Slurm, Open MPI, Kubernetes, Cloud TPU).  Then ``jax.devices()`` lists every process's
  devices, and the 1-D ``"data"`` mesh over them (:func:`parallel.data_mesh`) splits each batch
  over all of them.  Every process runs the same Python program in lockstep on the same inputs
  (built identically on each: same config, same seeds); ``jax.device_put`` of such a host array
  onto the mesh makes one global array (JAX checks the copies are equal), and
  :func:`parallel.to_host` gathers a result whose rows live on several processes.  Only process 0
  writes files (:func:`is_writer`); on CPU the cross-process sums go through gloo.
* **independent processes, one slice of the grid each** (``experiment run``): the grid's groups
  never talk to each other, so no runtime is started; :func:`identity` says which slice
  (``--shard index/count``) this process runs, on its own devices, and the results folder's claims
  keep two processes off one group.  (Started, the runtime would even be in the way: orbax then
  synchronises every save across all processes and writes host arrays from process 0 only.)
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = ["initialize", "identity", "parse_address", "is_writer", "agree", "orbax_options"]

FLAGS = "--coordinator HOST:PORT --num-processes N --process-id I"


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` (an IPv6 host in brackets: ``"[::1]:1234"``) → (host, port), else a
    ValueError that shows the expected form."""
    m = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+):(\d+)", str(address).strip())
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise ValueError(f"--coordinator must be HOST:PORT with a port in 1..65535 (e.g. 10.0.0.1:1234, the "
                         f"address of process 0, the same on every process); got {address!r}")
    return m.group(1), int(m.group(2))


def _check(num_processes: int | None, process_id: int | None) -> None:
    if (num_processes is None) != (process_id is None):
        given, missing = ("--num-processes", "--process-id") if process_id is None else ("--process-id", "--num-processes")
        raise ValueError(f"{given} needs {missing} as well: pass both ({FLAGS}), or --distributed to read them "
                         "from the cluster (Slurm, Open MPI, Kubernetes, Cloud TPU)")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"--num-processes must be at least 1; got {num_processes}")
    if process_id is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id must lie in [0, {num_processes - 1}] for --num-processes {num_processes} "
                         f"(processes are numbered from 0); got {process_id}")


def _detected() -> tuple[str | None, int | None, int | None]:
    """(coordinator, count, index) from the cluster environment, as ``jax.distributed.initialize``
    reads it (its cluster classes: Slurm, Open MPI, Kubernetes, Cloud TPU), or Nones."""
    from jax._src.clusters import ClusterEnv  # jax's own detection; no public entry point for it

    env = next((e for e in ClusterEnv._cluster_types if not e.opt_in_only_method and e.is_env_present()), None)
    if env is None:
        return None, None, None
    return None, env.get_process_count(), env.get_process_id()


def identity(num_processes: int | None = None, process_id: int | None = None, auto: bool = False) -> tuple[int, int]:
    """(index, count) of this process without starting the runtime: from the arguments, else with
    ``auto`` from the cluster environment, else (0, 1)."""
    _check(num_processes, process_id)
    if num_processes is None and auto:
        _, num_processes, process_id = _detected()
        if num_processes is None:
            raise ValueError(f"--distributed found no cluster environment (Slurm, Open MPI, Kubernetes, Cloud TPU); "
                             f"pass {FLAGS} instead")
    return (0, 1) if num_processes is None else (int(process_id), int(num_processes))


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               auto: bool = False, timeout_s: int = 300) -> tuple[int, int]:
    """Start JAX's distributed runtime for this process and return (process index, process count).

    ``coordinator``: ``"host:port"`` of process 0 (it listens there), the same on every process;
    ``num_processes`` / ``process_id``: how many processes take part and which this is.  ``auto``:
    leave what is not given to the cluster environment (``jax.distributed.initialize``'s own
    detection).  With nothing given and no ``auto``: no runtime, (0, 1).  Call it before anything
    else uses JAX (the devices are fixed then).  On CPU, cross-process collectives go through gloo
    (set here unless the ``jax_cpu_collectives_implementation`` flag chose another).
    ``timeout_s``: how long to wait for the other processes to connect.
    """
    import jax

    _check(num_processes, process_id)
    if coordinator is not None:
        parse_address(coordinator)
    if coordinator is None and num_processes is None and not auto:
        return 0, 1
    if not auto and coordinator is None and num_processes is not None and int(num_processes) > 1 \
            and not os.environ.get("JAX_COORDINATOR_ADDRESS"):
        raise ValueError(f"--num-processes {num_processes} needs --coordinator HOST:PORT (process 0's address, the "
                         "same on every process) to connect the processes")
    if not auto and coordinator is not None and num_processes is None:
        raise ValueError(f"--coordinator needs --num-processes and --process-id too ({FLAGS}), or --distributed "
                         "to read them from the cluster")
    if jax.config.jax_cpu_collectives_implementation is None:  # older jaxlibs had none by default
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id, initialization_timeout=int(timeout_s),
                                   cluster_detection_method=None if auto else "deactivate")
    except ValueError as err:  # jax's "coordinator_address should be defined." and the like
        raise ValueError(f"could not start the distributed runtime ({err}); outside a detected cluster pass "
                         f"{FLAGS}") from None
    except RuntimeError as err:
        if "before" in str(err) or "already" in str(err) or "once" in str(err):
            raise ValueError(f"could not start the distributed runtime: {err} (initialize it first thing, once "
                             "per process)") from None
        raise
    return jax.process_index(), jax.process_count()


def is_writer() -> bool:
    """Whether this process writes files: process 0 (every process when there is one)."""
    import jax

    return jax.process_index() == 0


def agree(value: Any, collective: bool) -> Any:
    """``value`` as process 0 has it, on every process (``collective``: the processes run one
    program in lockstep; else ``value`` itself).  For decisions taken from files (which groups are
    done, whose claim a group is), so all processes take the branch process 0 takes."""
    if not collective:
        return value
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    out = multihost_utils.broadcast_one_to_all(jax.tree.map(np.asarray, value))
    return jax.tree.map(lambda a, v: type(v)(a) if isinstance(v, (bool, int, float)) else a, out, value)


def orbax_options(read: bool = False) -> dict:
    """Keyword arguments for an orbax checkpointer whose files one process writes (``read``: reads)
    on its own: none when there is one process.  Else orbax is told that only this process takes
    part, or for writes process 0 (by default it waits for every process at each save, and only
    process 0 writes host arrays, whoever calls)."""
    import jax

    if jax.process_count() == 1:
        return {}
    import orbax.checkpoint as ocp

    me = jax.process_index() if read else 0
    return {"multiprocessing_options": ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})}
