"""Where the test suite's time goes: a pytest plugin that records, per test, its wall time and
the seconds JAX spent tracing, lowering and compiling (``jax.monitoring`` events), and per program
name the compile seconds and count, and per traced function the tracing seconds and count (a
function traced many times more than it compiled is retraced by callers that rebuild it); then a
summary of the last recorded run (a new run clears the folder).  Each test's record also has its
start (epoch seconds), so a run can be laid beside a CPU sampler (``vmstat 1``) as a timeline.

Record (each xdist worker writes its own file; subprocesses of tests are not seen):

    MANIFOLD_ROBUSTNESS_DATA=/tmp/cold PYTHONPATH=benchmarks .venv/bin/python -m pytest -q \\
        -p suite_profile -n 2 --dist loadfile --no-loadscope-reorder
    .venv/bin/python benchmarks/suite_profile.py [--out .suite_profile] [--top 25]

A fresh ``MANIFOLD_ROBUSTNESS_DATA`` folder gives a cold compilation cache, as CI has.  Measured
(2-core Intel Xeon (AVX-512), 2026-12-06, cold): 891 s summed over tests of which 458 s backend
compile, 145 s tracing and lowering; with the suite's ``JAX_DISABLE_MOST_OPTIMIZATIONS=1`` 756 s,
269 s and 135 s (``tests/conftest.py``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path

OUT = os.environ.get("SUITE_PROFILE_OUT", ".suite_profile")
_COMPILE = "/jax/core/compile/backend_compile_duration"
_TRACE = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration")

_current = ["<collection>"]
_tests: dict[str, dict] = collections.defaultdict(lambda: {"wall": 0.0, "compile": 0.0, "compiles": 0, "trace": 0.0})
_programs: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
_traced: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])  # per function: trace s, count
_started: dict[str, float] = {}


def _listen(event: str, duration: float, **kwargs) -> None:
    test = _tests[_current[0]]
    if event == _COMPILE:
        test["compile"] += duration
        test["compiles"] += 1
        program = _programs[kwargs.get("fun_name", "?")]
        program[0] += duration
        program[1] += 1
    elif event in _TRACE:
        test["trace"] += duration
        if event == _TRACE[0]:  # nested: an outer function's time includes the jits it traces
            traced = _traced[kwargs.get("fun_name", "?")]
            traced[0] += duration
            traced[1] += 1


def pytest_configure(config) -> None:
    import jax

    if "PYTEST_XDIST_WORKER" not in os.environ:  # the main process, before any worker starts
        for stale in Path(OUT).glob("*.json"):
            stale.unlink()
    jax.monitoring.register_event_duration_secs_listener(_listen)


def pytest_runtest_protocol(item, nextitem) -> None:
    _current[0] = item.nodeid
    _started[item.nodeid] = time.perf_counter()


def pytest_runtest_logfinish(nodeid, location) -> None:
    if nodeid in _started:
        _tests[nodeid]["wall"] = time.perf_counter() - _started[nodeid]
        _tests[nodeid]["start"] = time.time() - _tests[nodeid]["wall"]  # epoch seconds: a timeline


def pytest_sessionfinish(session) -> None:
    if not any(t["wall"] for t in _tests.values()):
        return  # xdist's main process: its workers ran the tests
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    Path(OUT).mkdir(parents=True, exist_ok=True)
    with open(Path(OUT) / f"{worker}.json", "w") as f:
        json.dump({"tests": _tests, "programs": _programs, "traced": _traced}, f)


def summarise(folder: Path, top: int) -> None:
    tests, programs, traced = {}, collections.defaultdict(lambda: [0.0, 0]), collections.defaultdict(lambda: [0.0, 0])
    files = sorted(folder.glob("*.json"))
    if not files:
        raise SystemExit(f"no recorded runs in {folder}: run pytest with -p suite_profile first (see the docstring)")
    for path in files:
        run = json.loads(path.read_text())
        tests.update(run["tests"])
        for name, (seconds, count) in run["programs"].items():
            programs[name][0] += seconds
            programs[name][1] += count
        for name, (seconds, count) in run.get("traced", {}).items():
            traced[name][0] += seconds
            traced[name][1] += count
    total = {k: sum(t[k] for t in tests.values()) for k in ("wall", "compile", "compiles", "trace")}
    print(f"{len(tests)} tests, {total['wall']:.0f} s summed: compile {total['compile']:.0f} s "
          f"({total['compiles']} programs), tracing + lowering {total['trace']:.0f} s, the rest "
          f"{total['wall'] - total['compile'] - total['trace']:.0f} s")
    files_ = collections.defaultdict(lambda: collections.Counter())
    for nodeid, t in tests.items():
        files_[nodeid.split("::")[0]].update(t)
    print(f"\n{'file':44s} {'wall':>7s} {'compile':>8s} {'trace':>6s} {'programs':>8s}")
    for name, t in sorted(files_.items(), key=lambda kv: -kv[1]["wall"])[:top]:
        print(f"{name:44s} {t['wall']:7.1f} {t['compile']:8.1f} {t['trace']:6.1f} {t['compiles']:8d}")
    print(f"\n{'program':44s} {'compile s':>9s} {'count':>6s}")
    for name, (seconds, count) in sorted(programs.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"{name[:44]:44s} {seconds:9.1f} {count:6d}")
    print(f"\n{'traced function (nested: includes inner jits)':44s} {'trace s':>9s} {'count':>6s}")
    for name, (seconds, count) in sorted(traced.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"{name[:44]:44s} {seconds:9.1f} {count:6d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=OUT, help="the folder the plugin wrote (default %(default)s)")
    parser.add_argument("--top", type=int, default=25, help="rows per table (default %(default)s)")
    args = parser.parse_args()
    summarise(Path(args.out), args.top)


if __name__ == "__main__":
    main()
