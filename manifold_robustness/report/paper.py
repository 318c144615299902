"""The paper's numbers the report compares against (package data ``paper_data.json``, written by
``scripts/extract_paper_data.py`` from the figures of Stutz et al., CVPR 2019).

>>> paper_series("fonts", "test_error", "normal")      # (N int array, error fraction array) or None
>>> paper_value("fonts", "regular_success", "regular_at", 1000)   # 0.8851
>>> paper_distances("fonts")["regular"]["mean"]        # 1.08 (Fig. 3, true manifold)

Quantities (fractions): ``test_error``, ``regular_success``, ``on_true_success`` (FONTS only),
``on_learned_success``, and ``on_data_success`` (the class-agnostic manifold's attack, which the
paper's figures do not show: every lookup of it answers None).  Datasets and methods use this
library's names (``fonts``, ``emnist``, ``fashion_mnist``; ``normal``, ``regular_at``,
``on_true_manifold_at``, ``augment``, ``adversarial_transformation``, ``on_learned_manifold_at``).
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np

QUANTITIES = ("test_error", "regular_success", "on_true_success", "on_learned_success", "on_data_success")

PAPER_MODEL = "cnn"  # the architecture of a series without "model" (the paper's main experiments)

# Attack (as named in run records) → paper quantity of its success rate.
ATTACK_QUANTITY = {"regular": "regular_success", "on_true": "on_true_success", "on_learned": "on_learned_success",
                   "on_data": "on_data_success"}


@functools.cache
def paper_data() -> dict:
    """The whole package-data file: ``series`` (list of dicts with dataset, quantity, method, x, y,
    source) and ``distances`` (dataset → Fig. 3 statistics)."""
    return json.loads(resources.files("manifold_robustness.report").joinpath("paper_data.json").read_text())


@functools.cache
def _index() -> dict:
    return {(s["dataset"], s["quantity"], s["method"], s.get("model", PAPER_MODEL)): s for s in paper_data()["series"]}


def curve_model(model: str | None) -> str:
    """The architecture whose paper curves stand beside runs of ``model``: itself where the paper
    plotted it (ResNet-13, Fig. 7 top), else the paper's main CNN (its curves are the reference
    for any other architecture too)."""
    return model if any(a == model for *_, a in _index()) else PAPER_MODEL


def paper_series(dataset: str, quantity: str, method: str, model: str = PAPER_MODEL) -> tuple[np.ndarray, np.ndarray] | None:
    """(N, value) of one paper curve of ``model``'s architecture, or None when the paper has none."""
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; known: {QUANTITIES}")
    s = _index().get((dataset, quantity, method, model))
    if s is None:
        return None
    return np.asarray(s["x"], np.int64), np.asarray(s["y"], np.float64)


def series_against_error(dataset: str, quantity: str, method: str,
                         model: str = PAPER_MODEL) -> tuple[np.ndarray, np.ndarray] | None:
    """(test error, value) of one paper curve at the N where both are given, in N order; None
    when the paper has either curve missing."""
    s, e = paper_series(dataset, quantity, method, model), paper_series(dataset, "test_error", method, model)
    if s is None or e is None:
        return None
    _, ia, ib = np.intersect1d(e[0], s[0], return_indices=True)
    return e[1][ia], s[1][ib]


def has_curves(dataset: str, quantity: str, model: str = PAPER_MODEL) -> bool:
    """Whether the paper shows ``quantity`` for ``dataset`` and ``model`` at all (for any method)."""
    return any(d == dataset and q == quantity and a == model for d, q, _, a in _index())


def paper_source(dataset: str, quantity: str, method: str, model: str = PAPER_MODEL) -> str | None:
    """The figure a curve was read from, or None."""
    s = _index().get((dataset, quantity, method, model))
    return None if s is None else s["source"]


def paper_value(dataset: str, quantity: str, method: str, n: int, model: str = PAPER_MODEL) -> float | None:
    """The paper's value at exactly N = ``n`` (no interpolation), or None."""
    s = paper_series(dataset, quantity, method, model)
    if s is None:
        return None
    hit = np.flatnonzero(s[0] == int(n))
    return float(s[1][hit[0]]) if hit.size else None


def paper_tradeoff(dataset: str) -> dict[str, tuple[float, float]] | None:
    """Fig. 7 bottom at the largest N: method → (test error, regular success), or None."""
    t = paper_data().get("tradeoff", {}).get(dataset)
    return None if t is None else {m: (float(v[0]), float(v[1])) for m, v in t["points"].items()}


def paper_mean_linf(dataset: str) -> dict[str, tuple[float, float]] | None:
    """Fig. 8: method → (low, high) of the mean ‖δ‖∞ of successful regular perturbations over N
    (the paper's curves are flat), or None where the paper does not report it."""
    t = paper_data().get("mean_linf", {}).get(dataset)
    return None if t is None else {m: (float(v[0]), float(v[1])) for m, v in t["values"].items()}


MANIFOLD_MEASURE = "manifold"  # the manifold's own distance (true or learned projection)


def paper_distances_by_measure(dataset: str) -> dict[str, dict[str, dict]]:
    """Fig. 3 statistics by the measure they were taken with: ``"manifold"`` (the manifold's own
    distance), ``"knn_point"`` / ``"knn_mean"`` (the k-NN local subspace, as our
    ``distances_knn_<center>``) → group → {mean, median, …}; empty where the paper gives none."""
    p = paper_distances(dataset) or {}
    groups = ("test", "regular", "on_manifold")
    out: dict[str, dict[str, dict]] = {}
    blocks = [p] + [v for v in p.values() if isinstance(v, dict) and "measure" in v]
    for b in blocks:
        stats = {g: (b[g] if isinstance(b[g], dict) else {"mean": float(b[g])}) for g in groups if g in b}
        if stats:
            out[b.get("measure", MANIFOLD_MEASURE)] = stats
    return out


def paper_distances(dataset: str) -> dict | None:
    """Fig. 3 statistics for ``dataset`` (group → {mean, median, q05, q95, min, max, count} where
    the paper gives them; ``source``; ``manifold``), or None."""
    return paper_data()["distances"].get(dataset)
