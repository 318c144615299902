"""The reproduction report: ``REPORT.md``, ``report.html``, ``verdicts.json`` and the figures, from
a list of run records (shell code: it writes files).

>>> rep = write_report(store.records(), "results/report", planned=store.planned(), experiment=store.experiment())
>>> rep.verdicts["claim3"]["verdict"]      # "holds" | "does not hold" | "not enough data"
>>> rep.paths["markdown"]                  # results/report/REPORT.md

Verdicts and their rules: :mod:`manifold_robustness.report.claims`.  Our numbers are shown next
to the paper's at the same N (:mod:`manifold_robustness.report.paper`); a report on no records,
or on a part of the planned runs, says what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from manifold_robustness.report import atomic
from manifold_robustness.data.specs import SPECS
from manifold_robustness.report import claims as C
from manifold_robustness.report import document as D
from manifold_robustness.report import figures, paper
from manifold_robustness.runner.records import ATTACK_NAMES, DISTANCE_GROUPS, RunKey, RunRecord

DEFAULT_TITLE = "Disentangling adversarial robustness and generalization: reproduction report"
DATASET_NAMES = {name: spec.title for name, spec in SPECS.items()}
_GROUP_LABELS = {"test": "test images", "regular": "regular adversarial", "on_manifold": "on-manifold adversarial"}


@dataclasses.dataclass
class Report:
    """paths: name → file written (``markdown``, ``html``, ``verdicts`` and one per figure);
    verdicts: claim → {verdict, reason, numbers} (see :mod:`.claims`)."""

    paths: dict[str, Path]
    verdicts: dict[str, dict]


def pct(v: float | None) -> str:
    """A fraction as a percentage: two decimals below 10 %, one above; "—" when missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{100 * v:.2f}" if abs(v) < 0.1 else f"{100 * v:.1f}"


def _num(v: float | None, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _ours(mean: float | None, std: float | None) -> str:
    return pct(mean) if std is None or mean is None else f"{pct(mean)} ± {pct(std)}"


def _ds(name: str) -> str:
    return DATASET_NAMES.get(name, name)


def _seeds(seeds: Iterable[int]) -> str:
    return ",".join(str(s) for s in sorted(seeds))


# ---------------------------------------------------------------- sections


def _what_ran(records, cells, planned, experiment) -> list:
    blocks: list = [D.Heading("What ran")]
    done = {r.key for r in records}
    if not records:
        blocks.append(D.Para("No runs have finished: there are no records, so no claim can be checked."))
    else:
        rows = []
        for ds in C.datasets(cells):
            for m in sorted({c.method for c in cells.values() if c.dataset == ds}):
                cs = [c for c in cells.values() if c.dataset == ds and c.method == m]
                attacks = sorted({a for c in cs for a in c.success})
                rows.append([_ds(ds), m, " ".join(str(c.n) for c in cs), _seeds({s for c in cs for s in c.seeds}),
                             str(sum(len(c.seeds) for c in cs)), ", ".join(attacks) or "none"])
        blocks.append(D.Table(["dataset", "method", "N", "seeds", "runs", "attacks"], rows,
                              caption=f"{len(records)} finished run(s)."))
    if planned is not None:
        planned = [k if isinstance(k, RunKey) else RunKey.parse(str(k)) for k in planned]
        missing = sorted(set(planned) - done)
        extra = sorted(done - set(planned))
        blocks.append(D.Para(f"{len(set(planned) & done)} of {len(set(planned))} planned run(s) finished; "
                             f"{len(missing)} missing" + (f"; {len(extra)} finished run(s) were not planned." if extra else ".")))
        if missing:
            groups: dict[tuple, dict[int, list[int]]] = {}
            for k in missing:
                groups.setdefault((k.dataset, k.method), {}).setdefault(k.n, []).append(k.seed)
            blocks.append(D.Table(["dataset", "method", "missing N (seeds)"],
                                  [[_ds(ds), m, "; ".join(f"{n} ({_seeds(s)})" for n, s in sorted(by_n.items()))]
                                   for (ds, m), by_n in sorted(groups.items())], caption="Planned runs without a record."))
    elif not records:
        blocks.append(D.Para("No list of planned runs was given."))
    data_options = ((experiment or {}).get("config") or {}).get("data")
    for ds in C.datasets(cells):
        describe = SPECS[ds].describe if ds in SPECS else None
        text = describe(data_options) if describe and data_options else None
        if text:
            blocks.append(D.Para(text))
    if experiment:
        blocks.append(D.Para("Experiment configuration:"))
        blocks.append(D.Code(json.dumps(experiment, indent=1, sort_keys=True, default=str)))
    return blocks


def _numbers_table(ds: str, cells, model: str = paper.PAPER_MODEL) -> D.Table:
    cs = [c for c in cells.values() if c.dataset == ds]
    attacks = [a for a in ATTACK_NAMES if any(a in c.success for c in cs)]
    # a "paper" column only beside the attacks whose success the paper shows for this dataset
    shown = {a for a in attacks if a in paper.ATTACK_QUANTITY and paper.has_curves(ds, paper.ATTACK_QUANTITY[a], model)}
    header = ["method", "N", "seeds", "test error", "paper"]
    for a in attacks:
        header += [f"{a} success"] + (["paper"] if a in shown else [])
    rows = []
    for c in cs:
        row = [c.method, str(c.n), _seeds(c.seeds), _ours(c.test_error, c.test_error_std),
               pct(paper.paper_value(ds, "test_error", c.method, c.n, model))]
        for a in attacks:
            row.append(_ours(c.success.get(a), c.success_std.get(a)))
            if a in shown:
                row.append(pct(paper.paper_value(ds, paper.ATTACK_QUANTITY[a], c.method, c.n, model)))
        rows.append(row)
    return D.Table(header, rows, caption=f"{_ds(ds)}: test error and attack success rates in % (ours: mean ± std over "
                   "seeds), each next to the paper's value at the same N (— where the paper has none).")


def _attacks_table(ds: str, cells) -> D.Table | None:
    """Every evaluation attack that ran beside the paper's two, with both rates; None when only
    the paper's ran (the numbers table has them)."""
    cs = [c for c in cells.values() if c.dataset == ds]
    attacks = [a for a in ATTACK_NAMES if any(a in c.success for c in cs)]
    if not [a for a in attacks if a not in paper.ATTACK_QUANTITY]:
        return None
    rows = [[c.method, str(c.n)] + [f"{pct(c.success[a])} / {pct(c.worst_case[a])} ({c.num_correct[a]})"
                                     if a in c.success else "—" for a in attacks] for c in cs]
    return D.Table(["method", "N", *attacks], rows,
                   caption=f"{_ds(ds)}: every evaluation attack, success rate in % over restarts (the paper's) / "
                           "worst case (any restart), with the attacked examples counted (correctly classified; "
                           "for transfer, by both the source and the evaluated model).")


def _audit_table(ds: str, cells) -> D.Table | None:
    """The attack-strength audit per cell and attack: the paper attack's worst-case rate on the
    audited images next to the strong attacks', flagged where they find ≥ C.AUDIT_FLAG more."""
    rows = []
    for c in (c for c in cells.values() if c.dataset == ds):
        for a, (ours, strong) in c.audit.items():
            flag = "⚠ understated" if strong - ours >= C.AUDIT_FLAG - 1e-12 else ""
            rows.append([c.method, str(c.n), a, pct(ours), pct(strong), f"{100 * (strong - ours):+.1f}", flag])
    if not rows:
        return None
    return D.Table(["method", "N", "attack", "paper attack", "strong attacks", "Δ (points)", "flag"], rows, caption=(
        f"{_ds(ds)}: attack-strength audit, worst-case success in % on the audited test images (the first "
        "audit.examples of each attack): the paper attack against the worst case over it and its stronger versions "
        f"(more iterations and restarts, cross-entropy and margin objectives); flagged at ≥ {100 * C.AUDIT_FLAG:g} "
        "points more."))


def _norm_table(ds: str, cells) -> D.Table | None:
    """Regular robustness as the mean ‖δ‖∞ of successful regular perturbations (the paper's
    measure on CelebA, Fig. 8), beside the paper's where it reports it; None when no run has one."""
    cs = [c for c in cells.values() if c.dataset == ds and "regular" in c.mean_linf]
    if not cs:
        return None
    theirs = paper.paper_mean_linf(ds) or {}

    def paper_cell(m):
        lo, hi = theirs.get(m, (None, None))
        return "—" if lo is None else (f"{lo:.3f}" if lo == hi else f"{lo:.3f}–{hi:.3f}")

    rows = [[c.method, str(c.n), f"{c.mean_linf['regular']:.3f}", paper_cell(c.method)] for c in cs]
    return D.Table(["method", "N", "mean ‖δ‖∞ of successes", "paper (all N)"], rows,
                   caption=f"{_ds(ds)}: regular robustness as the mean L∞ norm of successful regular perturbations "
                           "(larger: the model needs larger perturbations; ε bounds it)"
                           + (", the paper's measure here (Fig. 8; its curves are flat in N)." if theirs else "."))


def _paper_curve(ds: str, quantity: str, method: str, against_error: bool, model: str = paper.PAPER_MODEL):
    s = paper.series_against_error(ds, quantity, method, model) if against_error else \
        paper.paper_series(ds, quantity, method, model)
    return (None, None) if s is None else s


def _panel(ds, cells, title, quantity, attack, against_error, model: str = paper.PAPER_MODEL) -> figures.Panel:
    curves = []
    for m in sorted({c.method for c in cells.values() if c.dataset == ds}):
        s = C._series(cells, ds, m, attack)
        if attack is None:
            y, err = [c.test_error for c in s], [c.test_error_std for c in s]
        else:
            y, err = [c.success[attack] for c in s], [c.success_std.get(attack) for c in s]
        x = [c.test_error for c in s] if against_error else [c.n for c in s]
        px, py = _paper_curve(ds, quantity, m, against_error, model) if quantity else (None, None)
        if s or px is not None:
            curves.append(figures.Curve(m, x, y, [np.nan if e is None else e for e in err], px, py))
    ylabel = "test error" if attack is None else f"{attack} success rate"
    return figures.Panel(title, "test error" if against_error else "training-set size N", ylabel, curves,
                         logx=not against_error, xpercent=against_error)


def _verdict_blocks(claim: str, v: dict, rule: str) -> list:
    blocks = [D.Heading(f"Claim {claim[-1]}: {C.CLAIMS[claim]}"), D.Para(rule, strong="Tested:"),
              D.Para(f"{v['verdict']}.", strong="Verdict:")]
    per = v["numbers"].get("per_dataset") or {}
    if per:
        blocks.append(D.Bullets([f"{_ds(ds)}: {pv['verdict']} — {pv['reason']}" for ds, pv in per.items()]))
    else:
        blocks.append(D.Para(v["reason"]))
    return blocks


_RULES = {
    "claim1": (f"pooled L2 distances to the manifold of normally trained runs; holds if regular adversarial examples are "
               f"≥ {C.CLAIM1_DISTANCE_FACTOR:g}× farther than test images on average and on-manifold adversarial examples' "
               f"median is < {C.CLAIM1_ON_MANIFOLD_MEDIAN_RATIO:g}× the regular median (≥ {C.MIN_DISTANCE_EXAMPLES} "
               "examples per group)."),
    "claim2": (f"on-manifold attack on normally trained models; holds if its success rate exceeds "
               f"{100 * C.CLAIM2_MIN_SUCCESS:g}% over ≥ {C.CLAIM2_MIN_CORRECT} correctly classified examples."),
    "claim3": (f"Spearman correlation of test error and on-manifold success over (method, N) cells (≥ {C.CLAIM3_MIN_RHO:g} "
               f"overall, > 0 per method with ≥ {C.CLAIM3_METHOD_MIN_POINTS} N), and on-manifold adversarial training beating "
               f"normal training's test error at most N both ran."),
    "claim4": (f"normal training: test error falls with N while its regular success rises by ≤ "
               f"{100 * C.CLAIM4_SUCCESS_TOLERANCE:g} points (or Spearman(N, success) ≤ {C.CLAIM4_MAX_RHO:g}); regular "
               "adversarial training: regular success at the largest N ≤ at the smallest."),
}


def _distance_rows(stats: dict, theirs: dict) -> list[list[str]]:
    rows = []
    for g in DISTANCE_GROUPS:
        s, ps = stats[g], theirs.get(g) or {}
        q = f"{ps['q05']:.2f}–{ps['q95']:.2f}" if "q05" in ps else "—"
        rows.append([_GROUP_LABELS[g], str(s["count"]), _num(s["mean"], 3), _num(s["median"], 3),
                     str(ps.get("count", "—")), _num(ps.get("mean")), _num(ps.get("median")), q])
    return rows


_DISTANCE_HEADER = ["group", "count", "mean", "median", "paper count", "paper mean", "paper median", "paper 5–95 %"]


def _distance_tables(ds: str, v: dict) -> list[D.Table]:
    """The manifold's own distances, then each k-NN local subspace measure, each beside the
    paper's numbers taken with the same measure (Fig. 3; EMNIST's are the 50-NN approximation)."""
    nums = (v["numbers"].get("per_dataset") or {}).get(ds, {}).get("numbers", {})
    if "groups" not in nums:
        return []
    theirs = paper.paper_distances_by_measure(ds)
    p = paper.paper_distances(ds) or {}
    own = theirs.get(paper.MANIFOLD_MEASURE, {})
    if own:
        where = f"{p.get('source')}; paper manifold: {p.get('manifold', 'the same')}"
    elif theirs:
        where = "the paper's numbers are of the k-NN measure, beside it below"
    else:
        where = "the paper gives none"
    tables = [D.Table(_DISTANCE_HEADER, _distance_rows(nums["groups"], own),
                      caption=f"{_ds(ds)}: L2 distance to the manifold (our projection onto it), ours vs paper ({where}).")]
    for prefix, stats in (nums.get("other_measures") or {}).items():
        measure = prefix.removeprefix("distances_")
        note = "" if measure in theirs else "; the paper gives none"
        caption = (f"{_ds(ds)}: L2 distance to the {measure.replace('_', ' ')} local subspace (50 neighbours, 40 PCA "
                   f"components), ours vs the paper's with the same measure{note}.")
        tables.append(D.Table(_DISTANCE_HEADER, _distance_rows(stats, theirs.get(measure, {})), caption=caption))
    return tables


def _histogram_title(ds: str, measure: str = paper.MANIFOLD_MEASURE, what: str = "the manifold") -> str:
    theirs = paper.paper_distances_by_measure(ds).get(measure, {})
    parts = [f"{_ds(ds)}: L2 distance to {what}"]
    for g in ("regular", "on_manifold"):
        if g in theirs and "mean" in theirs[g]:
            median = theirs[g].get("median")
            parts.append(f"paper {g.replace('_', '-')}: mean {theirs[g]['mean']:.2f}"
                         + (f", median {median:.2f}" if median is not None else ""))
    return "\n".join(parts)


def _gallery_run(records: Sequence[RunRecord], ds: str) -> RunRecord | None:
    have = [r for r in records if r.key.dataset == ds and "gallery/clean" in r.arrays]
    normal = [r for r in have if r.key.method == "normal"]
    pick = normal or have
    return max(pick, key=lambda r: (r.key.n, -r.key.seed)) if pick else None


# ---------------------------------------------------------------- entry point


def write_report(records: Iterable[RunRecord], out_dir: str | Path, *, planned: Iterable[RunKey] | None = None,
                 experiment: dict | None = None, title: str | None = None) -> Report:
    """Write ``REPORT.md``, ``report.html`` (self-contained), ``verdicts.json`` and the figures
    into ``out_dir``; returns the paths and the verdicts."""
    records = list(records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = title or DEFAULT_TITLE
    cells = C.aggregate(records)
    verdicts = C.verdicts(records, cells)
    paths: dict[str, Path] = {}
    dsets = sorted({r.key.dataset for r in records})
    # the paper curves beside ours: of the experiment's architecture where the paper plotted it
    model = paper.curve_model(((experiment or {}).get("config") or {}).get("model"))

    blocks: list = [D.Heading(title, 1), D.Para(
        "Stutz, Hein & Schiele (CVPR 2019) claim that (1) regular adversarial examples leave the data manifold, (2) "
        "on-manifold adversarial examples exist, (3) on-manifold robustness is generalization and (4) regular "
        "robustness and generalization are not contradicting. Each claim below gets a verdict computed from the "
        "finished runs; paper curves are dashed and faint in the figures.")]
    blocks.append(D.Table(["claim", "verdict"], [[f"{k[-1]}. {C.CLAIMS[k]}", v["verdict"]] for k, v in verdicts.items()],
                          caption="Verdicts at a glance."))
    blocks += _what_ran(records, cells, list(planned) if planned is not None else None, experiment)

    # claim 1
    blocks += _verdict_blocks("claim1", verdicts["claim1"], _RULES["claim1"])
    from manifold_robustness.report.distances import plot_histograms

    for ds in dsets:
        tables = _distance_tables(ds, verdicts["claim1"])
        if not tables:
            continue
        blocks += tables
        pooled, _ = C.pooled_distances(records, ds)
        name = f"claim1_distances_{ds}"
        paths[name] = plot_histograms({g: pooled[g]["distance"] for g in DISTANCE_GROUPS}, out / f"{name}.png",
                                      title=_histogram_title(ds))
        blocks.append(D.Image(paths[name], f"{_ds(ds)} distances to the manifold"))
        for prefix in C.other_measures(records, ds):  # the k-NN local subspace (Fig. 3's learned-manifold panels)
            pooled, _ = C.pooled_distances(records, ds, prefix)
            measure = prefix.removeprefix("distances_")
            name = f"claim1_{measure}_{ds}"
            paths[name] = plot_histograms({g: pooled[g]["distance"] for g in DISTANCE_GROUPS}, out / f"{name}.png",
                                          title=_histogram_title(ds, measure, f"the {measure} local subspace"))
            blocks.append(D.Image(paths[name], f"{_ds(ds)} distances by {measure}"))

    # claim 2
    blocks += _verdict_blocks("claim2", verdicts["claim2"], _RULES["claim2"])
    for ds in dsets:
        run = _gallery_run(records, ds)
        if run is None:
            blocks.append(D.Para(f"{_ds(ds)}: no run kept a gallery of adversarial examples."))
            continue
        name = f"claim2_gallery_{ds}"
        paths[name] = figures.gallery(run.arrays, out / f"{name}.png", title=f"{_ds(ds)}, {run.key.name}")
        blocks.append(D.Image(paths[name], f"{_ds(ds)} adversarial examples ({run.key.name})"))

    # claims 3 and 4: numbers tables, then figures
    for claim in ("claim3", "claim4"):
        blocks += _verdict_blocks(claim, verdicts[claim], _RULES[claim])
        for ds in C.datasets(cells):
            if claim == "claim3":
                attack = C.on_manifold_attack(ds, cells)
                panels = [_panel(ds, cells, "test error vs N", "test_error", None, False, model),
                          _panel(ds, cells, f"{attack} success vs test error", paper.ATTACK_QUANTITY[attack], attack, True,
                                 model)]
            else:
                panels = [_panel(ds, cells, "regular success vs N", "regular_success", "regular", False, model),
                          _panel(ds, cells, "regular success vs test error", "regular_success", "regular", True, model)]
            if not any(len(c.x) for p in panels for c in p.curves):
                continue
            name = f"{claim}_{ds}"
            paths[name] = figures.curves(panels, out / f"{name}.png", title=f"{_ds(ds)} (paper: dashed)")
            blocks.append(D.Image(paths[name], f"{_ds(ds)} {claim}"))

    blocks += _tradeoff_blocks(records, out, paths)

    blocks.append(D.Heading("Numbers next to the paper's"))
    if not cells:
        blocks.append(D.Para("No numbers: no runs finished."))
    for ds in C.datasets(cells):
        blocks.append(_numbers_table(ds, cells, model))
        for table in (_attacks_table(ds, cells), _audit_table(ds, cells), _norm_table(ds, cells)):
            if table is not None:
                blocks.append(table)

    blocks += _fidelity_blocks(cells, verdicts["claim1"], model, out, paths)

    paths["verdicts"] = out / "verdicts.json"
    atomic.write_text(paths["verdicts"], json.dumps(_jsonable(verdicts), indent=1, allow_nan=False) + "\n")
    paths["markdown"] = out / "REPORT.md"
    atomic.write_text(paths["markdown"], D.to_markdown(blocks, out))
    paths["html"] = out / "report.html"
    atomic.write_text(paths["html"], D.to_html(blocks, title))
    return Report(paths=paths, verdicts=verdicts)


def _tradeoff_blocks(records, out: Path, paths: dict) -> list:
    """Paper Fig. 7 bottom: regular success against test error, one point per model, at the
    largest N that two or more methods share (the paper's points beside ours where it has them)."""
    blocks: list = []
    for ds in sorted({r.key.dataset for r in records}):
        runs = [r for r in records if r.key.dataset == ds and r.success_rate("regular") is not None
                and r.metrics.get("test_error") is not None]
        by_n: dict[int, set] = {}
        for r in runs:
            by_n.setdefault(int(r.key.n), set()).add(r.key.method)
        shared = [n for n, ms in by_n.items() if len(ms) >= 2]
        if not shared:
            continue
        n = max(shared)
        points: dict[str, tuple[list, list]] = {}
        for r in sorted((r for r in runs if r.key.n == n), key=lambda r: r.key):
            e, s = points.setdefault(r.key.method, ([], []))
            e.append(r.metrics["test_error"])
            s.append(r.success_rate("regular"))
        theirs = paper.paper_tradeoff(ds)
        if not blocks:
            blocks.append(D.Heading("Accuracy against regular robustness (paper Fig. 7 bottom)"))
        name = f"tradeoff_{ds}"
        paths[name] = figures.tradeoff(points, out / f"{name}.png", paper=theirs,
                                       title=f"{_ds(ds)}, N = {n}" + (" (paper: its largest N)" if theirs else ""))
        blocks.append(D.Image(paths[name], f"{_ds(ds)}: regular success against test error at N = {n}"))
    return blocks


def _fidelity_blocks(cells, claim1: dict, model: str, out: Path, paths: dict) -> list:
    """Distance to the paper, as numbers: the mean absolute difference of each curve and of the
    Fig. 3 statistics, a table per dataset (also ``fidelity.json``)."""
    from manifold_robustness.report import fidelity

    curves = fidelity.curve_differences(cells, model)
    per = claim1["numbers"].get("per_dataset") or {}
    distances = {}
    for ds, v in per.items():
        nums = v.get("numbers") or {}
        if "groups" in nums:
            measures = {paper.MANIFOLD_MEASURE: nums["groups"],
                        **{k.removeprefix("distances_"): g for k, g in (nums.get("other_measures") or {}).items()}}
            distances[ds] = fidelity.distance_differences(ds, measures)
    blocks: list = [D.Heading("Distance to the paper")]
    shown = sorted({d.dataset for d in curves} | {ds for ds, rows in distances.items() if rows})
    if not shown:
        blocks.append(D.Para("Nothing to compare: no finished run is at an N, or has a statistic, the paper shows."))
    for ds in shown:
        rows = [[d.curve, d.method, str(d.points), f"{100 * d.mad:.1f}"] for d in curves if d.dataset == ds]
        if rows:
            blocks.append(D.Table(["curve", "method", "points", "mean |ours − paper| (points)"], rows, caption=(
                f"{_ds(ds)}: mean absolute difference between our curve (mean over seeds) and the paper's, in "
                "percentage points, at the N both have (vs N) or at our test error on the paper's curve (vs test "
                "error).")))
        rows = [[r["measure"], _GROUP_LABELS[r["group"]], _num(r.get("mean"), 3), _num(r.get("median"), 3)]
                for r in distances.get(ds, [])]
        if rows:
            blocks.append(D.Table(["measure", "group", "|Δ mean|", "|Δ median|"], rows, caption=(
                f"{_ds(ds)}: Fig. 3 statistics, |ours − paper| of the L2 distance to the manifold, per measure the "
                "paper gives numbers for.")))
    paths["fidelity"] = out / "fidelity.json"
    atomic.write_text(paths["fidelity"], json.dumps(_jsonable(
        {"curves": [dataclasses.asdict(d) for d in curves], "distances": distances}), indent=1, allow_nan=False) + "\n")
    return blocks


def _jsonable(o):
    """Plain JSON: numpy scalars to Python, NaN and infinities to None, keys to strings."""
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (bool, np.bool_)):
        return bool(o)
    if isinstance(o, (int, np.integer)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    return o if o is None or isinstance(o, str) else str(o)
