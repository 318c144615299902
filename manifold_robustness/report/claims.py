"""The paper's four claims checked on finished runs: aggregation, Spearman correlation, verdicts.

Everything here works from a list of :class:`~manifold_robustness.runner.records.RunRecord`
only (no files, no models).  :func:`write_report` (defined in :mod:`.summary`) turns them
into ``REPORT.md``, ``report.html``, ``verdicts.json`` and the figures.

Each verdict is a dict ``{"verdict", "reason", "numbers"}`` with ``verdict`` one of
:data:`VERDICTS`.  A claim is judged per dataset, then across datasets: "does not hold" if it
fails on any dataset, else "holds" if it holds on at least one, else "not enough data".  Within
one dataset a claim with several parts holds only if every part holds ("does not hold" if any
part fails, otherwise "not enough data").

Rules (thresholds are the module constants below):

1. *Regular adversarial examples leave the manifold* (paper Fig. 3).  Pool the per-example
   distances ``distances/<group>/distance`` of the normally trained runs (of every run when no
   normal run measured them).  Needs ≥ :data:`MIN_DISTANCE_EXAMPLES` test images and regular
   adversarial examples.  Holds if the regular examples' mean distance is ≥
   :data:`CLAIM1_DISTANCE_FACTOR` × the test images' mean distance and, when at least
   :data:`MIN_DISTANCE_EXAMPLES` on-manifold adversarial examples were measured (the control),
   their median distance is < :data:`CLAIM1_ON_MANIFOLD_MEDIAN_RATIO` × the regular median.
2. *On-manifold adversarial examples exist.*  Normally trained runs, the on-manifold attack of
   the dataset's first manifold that ran (``on_true`` on FONTS, else ``on_learned``): the success rate pooled
   over runs (weighted by each run's correctly classified attacked examples) must exceed
   :data:`CLAIM2_MIN_SUCCESS`; needs ≥ :data:`CLAIM2_MIN_CORRECT` such examples.
3. *On-manifold robustness is generalization* (Fig. 5).  (a) Over all (method, N) cells with ≥ 2
   distinct N and ≥ :data:`CLAIM3_MIN_POINTS` cells, Spearman(test error, on-manifold success)
   ≥ :data:`CLAIM3_MIN_RHO`, and for every method with ≥ :data:`CLAIM3_METHOD_MIN_POINTS` N the
   per-method correlation is > 0.  (b) On-manifold adversarial training (of the dataset's first
   manifold that has runs: ``on_true_manifold_at`` on FONTS, else ``on_learned_manifold_at``) has a lower mean test error
   than ``normal`` at a strict majority of the N both ran (≥ :data:`CLAIM3_MIN_COMMON_NS` of them).
4. *Regular robustness and generalization are not contradicting* (Fig. 6).  (a) ``normal`` over
   ≥ 2 N: its test error at the largest N is below that at the smallest N (otherwise the runs do
   not vary generalization: not enough data) and its regular success rate does not rise with N:
   success(largest N) ≤ success(smallest N) + :data:`CLAIM4_SUCCESS_TOLERANCE`, or
   Spearman(N, success) ≤ :data:`CLAIM4_MAX_RHO`.  (b) ``regular_at`` over ≥ 2 N:
   success(largest N) ≤ success(smallest N) + :data:`CLAIM4_REGULAR_AT_TOLERANCE`.

On the paper's own curves (one record per plotted point) claims 3 and 4 hold on FONTS, EMNIST and
Fashion-MNIST; the pooled correlation of claim 3 is 0.96, 0.95 and 0.40 there (on Fashion-MNIST
the methods sit at different success levels, though each one's correlation is > 0.9), which is
why :data:`CLAIM3_MIN_RHO` is 0.3.

Means and standard deviations are over seeds (sample std; None for a single seed).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np

from manifold_robustness.manifolds.protocol import KINDS
from manifold_robustness.report import paper
from manifold_robustness.runner.records import ATTACK_NAMES, DISTANCE_GROUPS, RunRecord

HOLDS, FAILS, NOT_ENOUGH = "holds", "does not hold", "not enough data"
VERDICTS = (HOLDS, FAILS, NOT_ENOUGH)

MIN_DISTANCE_EXAMPLES = 20
CLAIM1_DISTANCE_FACTOR = 5.0
CLAIM1_ON_MANIFOLD_MEDIAN_RATIO = 0.25
CLAIM2_MIN_SUCCESS = 0.05
CLAIM2_MIN_CORRECT = 20
CLAIM3_MIN_POINTS = 4
CLAIM3_MIN_RHO = 0.3
CLAIM3_METHOD_MIN_POINTS = 3
CLAIM3_MIN_COMMON_NS = 2
CLAIM4_SUCCESS_TOLERANCE = 0.05
CLAIM4_MAX_RHO = 0.5
CLAIM4_REGULAR_AT_TOLERANCE = 0.0

CLAIMS = {
    "claim1": "Regular adversarial examples leave the data manifold",
    "claim2": "On-manifold adversarial examples exist",
    "claim3": "On-manifold robustness is generalization (and on-manifold adversarial training improves it)",
    "claim4": "Regular robustness and generalization are not contradicting",
}


# ---------------------------------------------------------------- statistics


def rankdata(values) -> np.ndarray:
    """1-based ranks; tied values share the average of the ranks they span."""
    a = np.asarray(values, np.float64).ravel()
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(a.size, np.float64)
    i = 0
    while i < a.size:
        j = i
        while j + 1 < a.size and a[order[j + 1]] == a[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x, y) -> float:
    """Spearman's rank correlation (Pearson correlation of tie-averaged ranks); NaN with fewer
    than two points or when either variable is constant."""
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    if x.size != y.size:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    if x.size < 2:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    v = np.asarray([x for x in values if x is not None], np.float64)
    if v.size == 0:
        return None, None
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)


# ---------------------------------------------------------------- aggregation


@dataclasses.dataclass
class Cell:
    """One (dataset, method, N) over its seeds: means and sample stds of the test error and of each
    attack's success rate (None where not measured), runs per attack and correct examples."""

    dataset: str
    method: str
    n: int
    seeds: tuple[int, ...]
    test_error: float | None
    test_error_std: float | None
    success: dict[str, float] = dataclasses.field(default_factory=dict)
    success_std: dict[str, float | None] = dataclasses.field(default_factory=dict)
    num_correct: dict[str, int] = dataclasses.field(default_factory=dict)
    worst_case: dict[str, float] = dataclasses.field(default_factory=dict)  # mean of the any-restart rates
    mean_linf: dict[str, float] = dataclasses.field(default_factory=dict)  # mean ‖δ‖∞ of successes (Fig. 8)
    audit: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)  # (paper, strong) worst case


# The attack-strength audit flags a cell where the strong attacks break this many more (a fraction
# of the audited images, 0.03 = 3 points) than the paper attack: its rate there understates success.
AUDIT_FLAG = 0.03


def aggregate(records: Iterable[RunRecord]) -> dict[tuple[str, str, int], Cell]:
    """Cells keyed by (dataset, method, N), sorted."""
    groups: dict[tuple, list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.key.dataset, r.key.method, int(r.key.n)), []).append(r)
    cells = {}
    for k in sorted(groups):
        runs = sorted(groups[k], key=lambda r: r.key.seed)
        err, err_std = _mean_std([r.metrics.get("test_error") for r in runs])
        cell = Cell(*k, seeds=tuple(r.key.seed for r in runs), test_error=err, test_error_std=err_std)
        for a in ATTACK_NAMES:
            rates = [r.success_rate(a) for r in runs if r.success_rate(a) is not None]
            if rates:
                cell.success[a], cell.success_std[a] = _mean_std(rates)
                cell.num_correct[a] = int(sum((r.attack(a) or {}).get("num_correct") or 0 for r in runs))
                worst = [r.success_rate(a, worst_case=True) for r in runs if r.success_rate(a) is not None]
                cell.worst_case[a] = float(np.mean(worst))
                norms = [(r.attack(a) or {}).get("mean_linf") for r in runs]
                norms = [v for v in norms if v is not None]
                if norms:
                    cell.mean_linf[a] = float(np.mean(norms))
        for a in ATTACK_NAMES:
            pairs = [((r.metrics.get("audit") or {}).get(a) or {}) for r in runs]
            pairs = [(p["paper_worst_case"], p["strong_worst_case"]) for p in pairs if p]
            if pairs:
                cell.audit[a] = (float(np.mean([p for p, _ in pairs])), float(np.mean([q for _, q in pairs])))
        cells[k] = cell
    return cells


def datasets(cells) -> list[str]:
    return sorted({c.dataset for c in cells.values()})


def _kinds(dataset: str) -> tuple[str, ...]:
    """The manifold kinds of ``dataset`` in its own order (every kind for an unknown dataset)."""
    from manifold_robustness.data import specs

    return specs.SPECS[dataset].manifolds if dataset in specs.SPECS else tuple(KINDS)


def _first_present(candidates: Sequence[str], present) -> str:
    return next((c for c in candidates if present(c)), candidates[0])


def on_manifold_attack(dataset: str, cells) -> str:
    """The on-manifold attack claims 2 and 3 use: that of the dataset's first manifold (its own
    best: the true one on FONTS) among those any run has, else the first manifold's."""
    keys = [KINDS[k].attack_key for k in _kinds(dataset)]
    return _first_present(keys, lambda a: any(c.dataset == dataset and a in c.success for c in cells.values()))


def on_manifold_training(dataset: str, cells) -> str:
    """The on-manifold adversarial training claim 3 compares with ``normal``: that of the
    dataset's first manifold among the methods that ran, else the first manifold's."""
    methods = [KINDS[k].adversarial_training for k in _kinds(dataset)]
    return _first_present(methods, lambda m: any(c.dataset == dataset and c.method == m for c in cells.values()))


def _series(cells, dataset: str, method: str, attack: str | None = None) -> list[Cell]:
    """Cells of one method, sorted by N, that have a test error (and the attack when given)."""
    return sorted((c for c in cells.values() if c.dataset == dataset and c.method == method and c.test_error is not None
                   and (attack is None or attack in c.success)), key=lambda c: c.n)


# ---------------------------------------------------------------- verdict helpers


def _verdict(verdict: str, reason: str, **numbers) -> dict:
    assert verdict in VERDICTS
    return {"verdict": verdict, "reason": reason, "numbers": numbers}


def _all_parts(parts: dict[str, dict]) -> str:
    vs = [p["verdict"] for p in parts.values()]
    return FAILS if FAILS in vs else HOLDS if vs and all(v == HOLDS for v in vs) else NOT_ENOUGH


def _across(per_dataset: dict[str, dict], nothing: str) -> dict:
    """Combine per-dataset verdicts (see the module docstring)."""
    if not per_dataset:
        return _verdict(NOT_ENOUGH, nothing, per_dataset={})
    vs = [v["verdict"] for v in per_dataset.values()]
    verdict = FAILS if FAILS in vs else HOLDS if HOLDS in vs else NOT_ENOUGH
    reason = " ".join(f"[{ds}: {v['verdict']}] {v['reason']}" for ds, v in per_dataset.items())
    return _verdict(verdict, reason, per_dataset=per_dataset)


def _pct(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _f(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


# ---------------------------------------------------------------- claim 1


def pooled_distances(records: Sequence[RunRecord], dataset: str,
                     prefix: str = "distances") -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """group → {"distance", "norm"} pooled over the normally trained runs of ``dataset`` that
    measured distances (over every run when no normal run did), and the run names used.
    ``prefix``: which measure (``distances``: the manifold's own; ``distances_knn_<center>``)."""
    have = [r for r in records if r.key.dataset == dataset and f"{prefix}/{DISTANCE_GROUPS[0]}/distance" in r.arrays]
    chosen = [r for r in have if r.key.method == "normal"] or have
    pooled = {}
    for g in DISTANCE_GROUPS:
        pooled[g] = {f: np.concatenate([np.asarray(r.arrays[f"{prefix}/{g}/{f}"], np.float64).ravel() for r in chosen
                                        if f"{prefix}/{g}/{f}" in r.arrays] or [np.zeros(0)])
                     for f in ("distance", "norm")}
    return pooled, [r.key.name for r in chosen]


def other_measures(records: Sequence[RunRecord], dataset: str) -> list[str]:
    """The array prefixes of the distance measures a dataset's runs kept beside the manifold's own
    (the k-NN local subspace: ``distances_knn_point``, ``distances_knn_mean``)."""
    suffix = f"/{DISTANCE_GROUPS[0]}/distance"
    return sorted({k[: -len(suffix)] for r in records if r.key.dataset == dataset for k in r.arrays
                   if k.endswith(suffix) and k.startswith("distances_")})


def _group_stats(pooled: dict) -> dict:
    return {g: {"count": int(pooled[g]["distance"].size),
                "mean": float(pooled[g]["distance"].mean()) if pooled[g]["distance"].size else None,
                "median": float(np.median(pooled[g]["distance"])) if pooled[g]["distance"].size else None}
            for g in DISTANCE_GROUPS}


def claim1(records: Sequence[RunRecord]) -> dict:
    per = {}
    for ds in sorted({r.key.dataset for r in records}):
        pooled, runs = pooled_distances(records, ds)
        if not runs:
            continue
        d = {g: pooled[g]["distance"] for g in DISTANCE_GROUPS}
        counts = {g: int(d[g].size) for g in DISTANCE_GROUPS}
        stats = {g: {"count": counts[g], "mean": float(d[g].mean()) if counts[g] else None,
                     "median": float(np.median(d[g])) if counts[g] else None} for g in DISTANCE_GROUPS}
        reg_norm = pooled["regular"]["norm"]
        if reg_norm.size == d["regular"].size and reg_norm.size:
            stats["regular"]["distance_over_norm"] = float(np.mean(d["regular"] / np.maximum(reg_norm, 1e-12)))
        nums = dict(groups=stats, runs=runs, paper=paper.paper_distances(ds))
        if counts["test"] < MIN_DISTANCE_EXAMPLES or counts["regular"] < MIN_DISTANCE_EXAMPLES:
            per[ds] = _verdict(NOT_ENOUGH, f"{counts['test']} test images and {counts['regular']} regular adversarial "
                               f"examples measured in {len(runs)} run(s); need ≥ {MIN_DISTANCE_EXAMPLES} of each.", **nums)
            continue
        t_mean, r_mean = stats["test"]["mean"], stats["regular"]["mean"]
        factor = r_mean / t_mean if t_mean > 0 else (math.inf if r_mean > 0 else float("nan"))
        leaves = factor >= CLAIM1_DISTANCE_FACTOR
        nums["factor"] = factor
        text = (f"regular adversarial examples lie {_f(r_mean, 3)} from the manifold on average (n={counts['regular']}), "
                f"{_f(factor, 1)}× the test images' {_f(t_mean, 3)} (n={counts['test']}; rule ≥ {CLAIM1_DISTANCE_FACTOR:g}×)")
        if "distance_over_norm" in stats["regular"]:
            text += f"; distance / perturbation norm {_f(stats['regular']['distance_over_norm'])} (1 = orthogonal)"
        control = None
        if counts["on_manifold"] >= MIN_DISTANCE_EXAMPLES:
            on_ratio = stats["on_manifold"]["median"] / max(stats["regular"]["median"], 1e-12)
            control = on_ratio < CLAIM1_ON_MANIFOLD_MEDIAN_RATIO
            nums["on_manifold_median_ratio"] = on_ratio
            text += (f"; on-manifold adversarial examples' median distance {_f(stats['on_manifold']['median'], 3)} is "
                     f"{_f(on_ratio)}× the regular median (rule < {CLAIM1_ON_MANIFOLD_MEDIAN_RATIO:g})")
        else:
            text += f"; on-manifold control skipped ({counts['on_manifold']} measured, < {MIN_DISTANCE_EXAMPLES})"
        others = {p: _group_stats(pooled_distances(records, ds, p)[0]) for p in other_measures(records, ds)}
        if others:  # reported beside the verdict, which stays the manifold's own distance
            nums["other_measures"] = others
            text += "; " + "; ".join(f"{p.removeprefix('distances_')}: regular {_f(o['regular']['mean'], 3)} vs test "
                                     f"{_f(o['test']['mean'], 3)}" for p, o in others.items())
        verdict = HOLDS if leaves and control is not False else FAILS
        per[ds] = _verdict(verdict, text[0].upper() + text[1:] + ".", **nums)
    return _across(per, "No run measured distances to the manifold (arrays distances/<group>/distance).")


# ---------------------------------------------------------------- claim 2


def claim2(records: Sequence[RunRecord], cells=None) -> dict:
    cells = aggregate(records) if cells is None else cells
    per = {}
    for ds in sorted({r.key.dataset for r in records}):
        attack = on_manifold_attack(ds, cells)
        runs = [r for r in records if r.key.dataset == ds and r.key.method == "normal" and r.attack(attack) is not None]
        if not runs:
            per[ds] = _verdict(NOT_ENOUGH, f"no normally trained run with the {attack} attack.", attack=attack)
            continue
        correct = np.array([r.attack(attack).get("num_correct") or 0 for r in runs], np.float64)
        rates = np.array([r.success_rate(attack) for r in runs], np.float64)
        total = int(correct.sum())
        pooled = float((rates * correct).sum() / total) if total else float("nan")
        worst = [r.success_rate(attack, worst_case=True) for r in runs]
        worst = [w for w in worst if w is not None]
        nums = dict(attack=attack, runs=len(runs), num_correct=total, success_rate=pooled,
                    worst_case_success_rate=float(np.mean(worst)) if worst else None,
                    gallery_runs=sum("gallery/on_manifold" in r.arrays for r in records if r.key.dataset == ds))
        if total < CLAIM2_MIN_CORRECT:
            per[ds] = _verdict(NOT_ENOUGH, f"{total} correctly classified examples attacked by {attack} in {len(runs)} "
                               f"normal run(s); need ≥ {CLAIM2_MIN_CORRECT}.", **nums)
            continue
        verdict = HOLDS if pooled > CLAIM2_MIN_SUCCESS else FAILS
        per[ds] = _verdict(verdict, f"the {attack} attack succeeds on {_pct(pooled)} of {total} correctly classified test "
                           f"examples (× restarts) of {len(runs)} normally trained run(s) (rule > {_pct(CLAIM2_MIN_SUCCESS)}).",
                           **nums)
    return _across(per, "No runs.")


# ---------------------------------------------------------------- claim 3


def claim3(cells) -> dict:
    per = {}
    for ds in datasets(cells):
        attack, at = on_manifold_attack(ds, cells), on_manifold_training(ds, cells)
        pts = [c for c in cells.values() if c.dataset == ds and c.test_error is not None and attack in c.success]
        ns = sorted({c.n for c in pts})
        parts: dict[str, dict] = {}
        if len(ns) < 2 or len(pts) < CLAIM3_MIN_POINTS:
            parts["correlation"] = _verdict(NOT_ENOUGH, f"{len(pts)} (method, N) cells with test error and {attack} success "
                                            f"at N = {ns or 'none'}; need ≥ 2 N and ≥ {CLAIM3_MIN_POINTS} cells.")
        else:
            rho = spearman([c.test_error for c in pts], [c.success[attack] for c in pts])
            per_method = {}
            for m in sorted({c.method for c in pts}):
                s = _series(cells, ds, m, attack)
                if len(s) >= CLAIM3_METHOD_MIN_POINTS:
                    per_method[m] = spearman([c.test_error for c in s], [c.success[attack] for c in s])
            bad = [m for m, r in per_method.items() if not r > 0]
            ok = rho >= CLAIM3_MIN_RHO and not bad
            text = (f"Spearman(test error, {attack} success) = {_f(rho)} over {len(pts)} cells (rule ≥ {CLAIM3_MIN_RHO:g})"
                    + (f"; per method: " + ", ".join(f"{m} {_f(r)}" for m, r in per_method.items()) if per_method else "")
                    + (f"; not positive for {', '.join(bad)}" if bad else ""))
            parts["correlation"] = _verdict(HOLDS if ok else FAILS, text, rho=rho, per_method=per_method, cells=len(pts))
        normal = {c.n: c.test_error for c in _series(cells, ds, "normal")}
        trained = {c.n: c.test_error for c in _series(cells, ds, at)}
        common = sorted(set(normal) & set(trained))
        if len(common) < CLAIM3_MIN_COMMON_NS:
            missing = [m for m, s in (("normal", normal), (at, trained)) if not s]
            parts["training"] = _verdict(NOT_ENOUGH, f"{at} and normal share {len(common)} N (need ≥ {CLAIM3_MIN_COMMON_NS})"
                                         + (f"; no runs of {', '.join(missing)}" if missing else "") + ".")
        else:
            better = [n for n in common if trained[n] < normal[n]]
            ok = len(better) * 2 > len(common)
            text = (f"{at} has lower test error than normal at {len(better)} of {len(common)} N ("
                    + ", ".join(f"N={n}: {_pct(trained[n])} vs {_pct(normal[n])}" for n in common) + ")")
            parts["training"] = _verdict(HOLDS if ok else FAILS, text, method=at, better_at=better, common=common,
                                         errors={n: [trained[n], normal[n]] for n in common})
        per[ds] = _verdict(_all_parts(parts), "; ".join(f"{k}: {p['verdict']} ({p['reason'].rstrip('.')})"
                                                         for k, p in parts.items()) + ".",
                           attack=attack, training=at, parts=parts)
    return _across(per, "No runs with a test error.")


# ---------------------------------------------------------------- claim 4


def claim4(cells) -> dict:
    per = {}
    for ds in datasets(cells):
        parts: dict[str, dict] = {}
        s = _series(cells, ds, "normal", "regular")
        if len({c.n for c in s}) < 2:
            parts["normal"] = _verdict(NOT_ENOUGH, f"normal training with regular success at {len(s)} N; need ≥ 2.")
        else:
            lo, hi = s[0], s[-1]
            rise = hi.success["regular"] - lo.success["regular"]
            rho = spearman([c.n for c in s], [c.success["regular"] for c in s])
            nums = dict(ns=[c.n for c in s], test_error=[c.test_error for c in s],
                        success=[c.success["regular"] for c in s], rise=rise, rho=rho)
            text = (f"normal: test error {_pct(lo.test_error)} → {_pct(hi.test_error)} and regular success "
                    f"{_pct(lo.success['regular'])} → {_pct(hi.success['regular'])} from N={lo.n} to N={hi.n}, "
                    f"Spearman(N, success) = {_f(rho)}")
            if not hi.test_error < lo.test_error:
                parts["normal"] = _verdict(NOT_ENOUGH, text + "; test error did not fall, so generalization did not vary",
                                           **nums)
            else:
                ok = rise <= CLAIM4_SUCCESS_TOLERANCE or (not math.isnan(rho) and rho <= CLAIM4_MAX_RHO)
                parts["normal"] = _verdict(HOLDS if ok else FAILS, text + f" (rule: rise ≤ {_pct(CLAIM4_SUCCESS_TOLERANCE)}"
                                           f" or Spearman ≤ {CLAIM4_MAX_RHO:g})", **nums)
        s = _series(cells, ds, "regular_at", "regular")
        if len({c.n for c in s}) < 2:
            parts["regular_at"] = _verdict(NOT_ENOUGH, f"regular_at with regular success at {len(s)} N; need ≥ 2.")
        else:
            lo, hi = s[0], s[-1]
            ok = hi.success["regular"] <= lo.success["regular"] + CLAIM4_REGULAR_AT_TOLERANCE
            parts["regular_at"] = _verdict(
                HOLDS if ok else FAILS,
                f"regular_at: test error {_pct(lo.test_error)} → {_pct(hi.test_error)} and regular success "
                f"{_pct(lo.success['regular'])} → {_pct(hi.success['regular'])} from N={lo.n} to N={hi.n} "
                f"(rule: success does not rise)",
                ns=[c.n for c in s], test_error=[c.test_error for c in s], success=[c.success["regular"] for c in s])
        per[ds] = _verdict(_all_parts(parts), "; ".join(f"{p['reason'].rstrip('.')} → {p['verdict']}"
                                                         for p in parts.values()) + ".", parts=parts)
    return _across(per, "No runs with a test error.")


def verdicts(records: Sequence[RunRecord], cells=None) -> dict[str, dict]:
    """claim → {verdict, reason, numbers} for the four claims."""
    records = list(records)
    cells = aggregate(records) if cells is None else cells
    return {"claim1": claim1(records), "claim2": claim2(records, cells), "claim3": claim3(cells), "claim4": claim4(cells)}


def write_report(records, out_dir, *, planned=None, experiment=None, title=None):
    """:func:`manifold_robustness.report.summary.write_report` (imported on call: that module
    imports this one)."""
    from manifold_robustness.report.summary import write_report as _write

    return _write(records, out_dir, planned=planned, experiment=experiment, title=title)
