"""Distance to the paper, as numbers (pure: cells and paper data in, rows out).

For every curve the report draws beside the paper's, the mean absolute difference between ours
(the mean over seeds) and the paper's:

- ``vs N`` (test error, each attack's success): at the N both have;
- ``vs test error`` (each attack's success against the test error, Figs. 5-6 right): the paper's
  curve interpolated at our test error, where our error lies inside the paper's range;
- Fig. 3 statistics: |ours − paper| of the mean and the median distance of each group, per
  measure the paper gives numbers for (its own on FONTS, the k-NN approximation on EMNIST).

Rates and errors are fractions here; the report shows them in percentage points.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from manifold_robustness.report import paper
from manifold_robustness.runner.records import ATTACK_NAMES, DISTANCE_GROUPS


@dataclasses.dataclass(frozen=True)
class Difference:
    """One curve of ours against the paper's: its mean absolute difference over ``points``."""

    dataset: str
    curve: str  # "test error vs N", "regular success vs N", "on_true success vs test error", …
    method: str
    points: int
    mad: float


def _mad(ours, theirs) -> float:
    return float(np.mean(np.abs(np.asarray(ours, float) - np.asarray(theirs, float))))


def curve_differences(cells, model: str = paper.PAPER_MODEL) -> list[Difference]:
    """Every (dataset, curve, method) with at least one point in common with the paper."""
    out = []
    for ds in sorted({c.dataset for c in cells.values()}):
        for method in sorted({c.method for c in cells.values() if c.dataset == ds}):
            cs = sorted((c for c in cells.values() if c.dataset == ds and c.method == method), key=lambda c: c.n)
            series = [("test error", "test_error", lambda c: c.test_error)]
            series += [(f"{a} success", paper.ATTACK_QUANTITY[a], lambda c, a=a: c.success.get(a))
                       for a in ATTACK_NAMES if a in paper.ATTACK_QUANTITY]
            for name, quantity, ours in series:
                s = paper.paper_series(ds, quantity, method, model)
                if s is None:
                    continue
                pairs = [(ours(c), s[1][s[0] == c.n][0]) for c in cs if ours(c) is not None and c.n in s[0]]
                if pairs:
                    out.append(Difference(ds, f"{name} vs N", method, len(pairs), _mad(*zip(*pairs))))
                curve = None if quantity == "test_error" else paper.series_against_error(ds, quantity, method, model)
                if curve is None:
                    continue
                order = np.argsort(curve[0])
                e, v = curve[0][order], curve[1][order]
                pairs = [(ours(c), float(np.interp(c.test_error, e, v))) for c in cs
                         if ours(c) is not None and c.test_error is not None and len(e) and e[0] <= c.test_error <= e[-1]]
                if pairs:
                    out.append(Difference(ds, f"{name} vs test error", method, len(pairs), _mad(*zip(*pairs))))
    return out


def distance_differences(dataset: str, measures: dict[str, dict]) -> list[dict]:
    """``measures``: measure → group → {mean, median, …} of ours (claim 1's numbers); rows of
    |ours − paper| for the mean and the median where the paper gives them with that measure."""
    theirs = paper.paper_distances_by_measure(dataset)
    rows = []
    for measure, groups in measures.items():
        for g in DISTANCE_GROUPS:
            ours, ref = groups.get(g) or {}, theirs.get(measure, {}).get(g) or {}
            diff = {k: abs(ours[k] - ref[k]) for k in ("mean", "median")
                    if ours.get(k) is not None and ref.get(k) is not None}
            if diff:
                rows.append({"measure": measure, "group": g, **diff})
    return rows
