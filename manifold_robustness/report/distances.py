"""Distance to the manifold (claim 1) as numbers and a Fig. 3-style histogram (shell code: it
runs attacks, loops over chunks and writes files).

>>> rep = distances.fonts_distances(clf.logits_fn(variables), batch, key, context, out_dir="results/claim1")
>>> rep.summary["regular"]          # {'count': …, 'mean': …, 'median': …, 'q05': …, 'q95': …, …}
>>> rep.paths["histogram"]          # results/claim1/distances.png

``batch`` is a FONTS batch (``image``, ``label``, ``theta``, ``font_id``) and ``context`` holds
the ``prototypes``.  Three groups are measured on the true manifold: the test images themselves,
their regular adversarial examples (L∞ PGD, ε = 0.3) and their on-manifold adversarial examples
(θ perturbed by η = 0.3).  As in the paper, every successful (example, restart) pair on a
correctly classified example counts (digest §7.1: "these counts span the restarts").
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from manifold_robustness import attacks, transforms
from manifold_robustness.manifolds import projection
from manifold_robustness.report import atomic

__all__ = ["summarize", "plot_histograms", "FontsDistanceReport", "fonts_distances", "GROUPS"]

GROUPS = ("test", "regular", "on_manifold")
_LABELS = {"test": "test images", "regular": "regular adversarial", "on_manifold": "on-manifold adversarial"}


def summarize(values) -> dict:
    """Summary of per-example values: count, mean, median, 5 % and 95 % quantiles, min, max
    (floats; None for an empty group).  NaNs are not expected and raise."""
    v = np.asarray(values, np.float64).ravel()
    if np.isnan(v).any():
        raise ValueError("values contain NaN")
    if v.size == 0:
        return {"count": 0, "mean": None, "median": None, "q05": None, "q95": None, "min": None, "max": None}
    q05, med, q95 = np.quantile(v, [0.05, 0.5, 0.95])
    return {"count": int(v.size), "mean": float(v.mean()), "median": float(med), "q05": float(q05),
            "q95": float(q95), "min": float(v.min()), "max": float(v.max())}


def plot_histograms(groups: Mapping[str, np.ndarray], path: str | Path, *, xlabel: str = "L2 distance to the manifold",
                    title: str | None = None, bins: int = 40, unit: str = "", xmax: float | None = None) -> Path:
    """Overlaid histograms, one per group, as a PNG (paper Fig. 3 style): the y axis is the
    fraction of each group's examples, so groups of different sizes compare; the legend gives
    each group's mean and count.  The x axis ends at ``xmax`` (default: the largest 99th
    percentile of the groups, so a few failed projections do not squash the plot); values beyond
    it fall in the last bin and the legend counts them.  Empty groups are listed in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = {k: np.asarray(v, np.float64).ravel() for k, v in groups.items()}
    nonempty = [a for a in arrays.values() if a.size]
    if xmax is None:
        xmax = max((np.quantile(a, 0.99) for a in nonempty), default=1.0) * 1.05
    xmax = float(xmax) if xmax > 0 else 1.0
    edges = np.linspace(0.0, xmax, bins + 1)
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    for name, a in arrays.items():
        label = _LABELS.get(name, name)
        if a.size:
            beyond = int((a > xmax).sum())
            extra = f", {beyond} beyond {xmax:.2g}" if beyond else ""
            ax.hist(np.minimum(a, xmax), bins=edges, weights=np.full(a.size, 1.0 / a.size), alpha=0.55,
                    label=f"{label}: mean {a.mean():.2f}{unit} (n={a.size}{extra})")
        else:
            ax.plot([], [], " ", label=f"{label}: none")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of examples")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    path = atomic.save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


@dataclasses.dataclass
class FontsDistanceReport:
    """Per group in :data:`GROUPS` (arrays of one value per measured image, numpy):
    distance ‖x̃ − π(x̃)‖ on the true manifold; norm ‖x̃ − x‖ (0 for test images); angle between
    x̃ − x and the tangent space at the example's θ (degrees; NaN for test images); example
    (index into the batch) and restart.  summary: group → :func:`summarize` of the distances,
    plus ``ratio`` (distance / norm) and ``angle`` summaries for the adversarial groups.  paths:
    the files written (empty without ``out_dir``)."""

    distance: dict[str, np.ndarray]
    norm: dict[str, np.ndarray]
    angle: dict[str, np.ndarray]
    example: dict[str, np.ndarray]
    restart: dict[str, np.ndarray]
    summary: dict[str, dict]
    paths: dict[str, Path]


def _check_batch(batch, context) -> int:
    missing = [k for k in ("image", "label", "theta", "font_id") if k not in batch]
    if missing:
        raise ValueError(f"a FONTS batch needs 'image', 'label', 'theta' and 'font_id'; missing {missing}")
    if not isinstance(context, Mapping) or "prototypes" not in context:
        raise ValueError("context must be a mapping with 'prototypes' (float32[F, 10, H, W, 1], data.fonts_prototypes)")
    b = int(np.shape(batch["label"])[0])
    for k in ("image", "label", "theta", "font_id"):
        if np.shape(batch[k])[:1] != (b,):
            raise ValueError(f"batch[{k!r}] must have a leading axis of {b} examples; got {np.shape(batch[k])}")
    return b


def _chunked(fn, arrays: dict, chunk: int, key) -> dict:
    """Apply ``fn(key, **arrays)`` (returning a dict of per-row arrays) to rows in chunks of
    ``chunk``, padding the last chunk by repeating its final row so one program serves all.  A
    group smaller than ``chunk`` runs as one chunk of the next power of two (few programs, little
    padding)."""
    n = next(iter(arrays.values())).shape[0]
    chunk = min(chunk, 1 << max(n - 1, 0).bit_length())
    outs: dict[str, list] = {}
    for i, start in enumerate(range(0, n, chunk)):
        part = {k: np.asarray(v[start : start + chunk]) for k, v in arrays.items()}
        m = next(iter(part.values())).shape[0]
        part = {k: np.pad(v, [(0, chunk - m)] + [(0, 0)] * (v.ndim - 1), mode="edge") for k, v in part.items()}
        for k, v in fn(jax.random.fold_in(key, i), **part).items():
            outs.setdefault(k, []).append(np.asarray(v)[:m])
    return {k: np.concatenate(v) for k, v in outs.items()}


def fonts_distances(logits_fn, batch: Mapping, key, context: Mapping, out_dir: str | Path | None = None, *,
                    regular: attacks.Attack | None = None, on_manifold: attacks.Attack | None = None,
                    config: projection.ProjectionConfig = projection.ProjectionConfig(),
                    ranges: transforms.TransformRanges = transforms.FONTS_RANGES["hard"],
                    chunk: int = 500, title: str | None = None) -> FontsDistanceReport:
    """Claim 1 on the true FONTS manifold for one batch and one classifier.

    logits_fn: float32[B, 28, 28, 1] → logits; batch: ``image`` float32[B, H, W, 1] in [0, 1],
    ``label`` int32[B], ``theta`` float32[B, 6], ``font_id`` int32[B]; context: ``prototypes``.
    ``regular`` / ``on_manifold``: the attacks (default ``attacks.make("linf")`` and
    ``attacks.make("on_true_manifold", ranges=ranges)``, the paper's settings).  Every image is
    projected by :func:`projection.project_true` from its example's own θ (plus ``config.restarts``
    random starts), ``chunk`` images per compiled call.  With ``out_dir``: writes
    ``distances.png`` (histogram), ``angles.png``, ``distances.json`` (summary) and
    ``distances.npz`` (per-example arrays).
    """
    _check_batch(batch, context)
    if chunk < 1:
        raise ValueError(f"chunk must be positive; got {chunk}")
    regular = regular or attacks.make("linf")
    on_manifold = on_manifold or attacks.make("on_true_manifold", ranges=ranges)
    batch = {k: jnp.asarray(batch[k]) for k in ("image", "label", "theta", "font_id")}
    prototypes = jnp.asarray(context["prototypes"])
    k_reg, k_on, k_proj = jax.random.split(key, 3)
    labels = batch["label"]

    attacks.check_inputs(regular, logits_fn, batch, context)
    attacks.check_inputs(on_manifold, logits_fn, batch, context)

    @jax.jit
    def run_attacks(batch, k_reg, k_on):  # one program: both attacks and the correctness masks
        reg = regular(logits_fn, batch, k_reg, context)
        on = on_manifold(logits_fn, batch, k_on, context)
        on_clean = on_manifold.clean(batch, context)
        ok_reg = attacks.correct(logits_fn, batch["image"], batch["label"])
        ok_on = attacks.correct(logits_fn, on_clean, batch["label"])
        return reg.x, reg.success & ok_reg[None], on.x, on.success & ok_on[None], on_clean

    reg_x, reg_ok, on_x, on_ok, on_clean = jax.device_get(run_attacks(batch, k_reg, k_on))
    groups = {
        "test": (np.asarray(batch["image"])[None], np.ones((1, reg_ok.shape[1]), bool), np.asarray(batch["image"])),
        "regular": (reg_x, reg_ok, np.asarray(batch["image"])),
        "on_manifold": (on_x, on_ok, on_clean),
    }

    @jax.jit
    def measure(k, x_tilde, x, theta, font_id, label):
        proj = projection.project_true(prototypes, font_id, label, x_tilde, theta, k, ranges=ranges, config=config)
        angle = projection.true_tangent_angle(prototypes, font_id, label, theta, x_tilde - x)
        return {"distance": proj.distance, "norm": projection.l2_distance(x_tilde, x), "angle": angle}

    out = {f: {} for f in ("distance", "norm", "angle", "example", "restart")}
    for g, (x_adv, mask, x_ref) in groups.items():
        restart, example = np.nonzero(mask)
        rows = {"x_tilde": x_adv[restart, example], "x": x_ref[example],
                "theta": np.asarray(batch["theta"])[example], "font_id": np.asarray(batch["font_id"])[example],
                "label": np.asarray(labels)[example]}
        res = _chunked(measure, rows, chunk, jax.random.fold_in(k_proj, GROUPS.index(g))) if example.size else \
            {"distance": np.zeros(0, np.float32), "norm": np.zeros(0, np.float32), "angle": np.zeros(0, np.float32)}
        if g == "test":
            res["angle"] = np.full_like(res["angle"], np.nan)
        for f in ("distance", "norm", "angle"):
            out[f][g] = res[f]
        out["example"][g], out["restart"][g] = example.astype(np.int32), restart.astype(np.int32)

    summary = {g: summarize(out["distance"][g]) for g in GROUPS}
    for g in ("regular", "on_manifold"):
        n = out["norm"][g]
        summary[g]["ratio"] = summarize(out["distance"][g] / np.maximum(n, 1e-12)) if n.size else summarize([])
        summary[g]["angle"] = summarize(out["angle"][g])
    paths: dict[str, Path] = {}
    if out_dir is not None:
        out_dir = Path(out_dir)
        paths["histogram"] = plot_histograms(out["distance"], out_dir / "distances.png", title=title or
                                             "FONTS: L2 distance to the true manifold")
        paths["angles"] = plot_histograms({g: out["angle"][g] for g in ("regular", "on_manifold")}, out_dir / "angles.png",
                                          xlabel="angle between x̃ − x and the tangent space (degrees)", unit="°", xmax=90.0,
                                          title="FONTS: angle to the true manifold's tangent space")
        paths["summary"] = out_dir / "distances.json"
        paths["summary"].write_text(json.dumps(summary, indent=2))
        paths["arrays"] = out_dir / "distances.npz"
        np.savez(paths["arrays"], **{f"{f}_{g}": out[f][g] for f in out for g in GROUPS})
    return FontsDistanceReport(**out, summary=summary, paths=paths)

