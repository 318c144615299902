"""Distance to the manifold (claim 1) as Fig. 3-style histograms and files (shell code).

>>> rep = distances.fonts_distances(clf.logits_fn(variables), batch, key, context, out_dir="results/claim1")
>>> rep.summary["regular"]          # {'count': …, 'mean': …, 'median': …, 'q05': …, 'q95': …, …}
>>> rep.paths["histogram"]          # results/claim1/distances.png

``batch`` is a FONTS batch (``image``, ``label``, ``theta``, ``font_id``) and ``context`` holds
the ``prototypes``.  The measurement itself is :func:`manifold_robustness.manifolds.measure.distances`
on any manifold (here the true one); this module draws and writes it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Mapping

import numpy as np

from manifold_robustness import attacks, transforms
from manifold_robustness.manifolds import projection
from manifold_robustness.report import atomic
from manifold_robustness.manifolds.measure import GROUPS, DistanceReport, check_batch, distances, summarize
from manifold_robustness.manifolds.objects import TrueFontsManifold

__all__ = ["summarize", "plot_histograms", "FontsDistanceReport", "fonts_distances", "GROUPS"]
_LABELS = {"test": "test images", "regular": "regular adversarial", "on_manifold": "on-manifold adversarial"}


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
class FontsDistanceReport(DistanceReport):
    """:class:`~manifold_robustness.manifolds.measure.DistanceReport` on the true manifold, plus
    paths: the files written (empty without ``out_dir``)."""

    paths: dict[str, Path] = dataclasses.field(default_factory=dict)


def fonts_distances(logits_fn, batch: Mapping, key, context: Mapping, out_dir: str | Path | None = None, *,
                    regular: attacks.Attack | None = None, on_manifold: attacks.Attack | None = None,
                    config: projection.ProjectionConfig | None = None,
                    ranges: transforms.TransformRanges = transforms.FONTS_RANGES["hard"],
                    chunk: int = 500, title: str | None = None) -> FontsDistanceReport:
    """Claim 1 on the true FONTS manifold for one batch and one classifier.

    logits_fn: float32[B, 28, 28, 1] → logits; batch: ``image`` float32[B, H, W, 1] in [0, 1],
    ``label`` int32[B], ``theta`` float32[B, 6], ``font_id`` int32[B]; context: ``prototypes``.
    ``regular`` / ``on_manifold``: the attacks (default ``attacks.make("linf")`` and the true
    manifold's attack, the paper's settings).  Every image is projected by
    :func:`projection.project_true` from its example's own θ (plus ``config.restarts`` random
    starts; default the true manifold's settings, the paper's), ``chunk`` images per compiled
    call.  With ``out_dir``: writes ``distances.png`` (histogram), ``angles.png``,
    ``distances.json`` (summary) and ``distances.npz`` (per-example arrays).
    """
    if not isinstance(context, Mapping) or "prototypes" not in context:
        raise ValueError("context must be a mapping with 'prototypes' (float32[F, 10, H, W, 1], data.fonts_prototypes)")
    manifold = TrueFontsManifold(context["prototypes"], ranges)
    check_batch(manifold, batch)
    rep = distances(manifold, logits_fn, batch, key, regular=regular or attacks.make("linf"),
                    on_manifold=on_manifold or manifold.attack(), context=dict(context), config=config, chunk=chunk)
    paths: dict[str, Path] = {}
    if out_dir is not None:
        out_dir = Path(out_dir)
        paths["histogram"] = plot_histograms(rep.distance, out_dir / "distances.png", title=title or
                                             "FONTS: L2 distance to the true manifold")
        paths["angles"] = plot_histograms({g: rep.angle[g] for g in ("regular", "on_manifold")}, out_dir / "angles.png",
                                          xlabel="angle between x̃ − x and the tangent space (degrees)", unit="°", xmax=90.0,
                                          title="FONTS: angle to the true manifold's tangent space")
        paths["summary"] = out_dir / "distances.json"
        paths["summary"].write_text(json.dumps(rep.summary, indent=2))
        paths["arrays"] = out_dir / "distances.npz"
        np.savez(paths["arrays"], **{f"{f}_{g}": getattr(rep, f)[g] for f in ("distance", "norm", "angle", "example",
                                                                              "restart") for g in GROUPS})
    return FontsDistanceReport(**dataclasses.asdict(rep), paths=paths)
