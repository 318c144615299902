"""Claim 1 as numbers: how far test images and their adversarial examples lie from a manifold.

>>> rep = measure.distances(m, logits_fn, batch, key, regular=attacks.make("linf"), on_manifold=m.attack())
>>> rep.summary["regular"]          # {'count': …, 'mean': …, 'median': …, 'q05': …, 'q95': …, …}

``m`` is any manifold (:mod:`.protocol`); ``batch`` holds ``image``, ``label`` and the fields
the manifold reads.  Three groups are measured: the test images themselves, their regular
adversarial examples and their on-manifold adversarial examples (from ``m``'s attack), by a
distance measure ``by``: the manifold's own projection (:class:`ProjectionMeasure`, the default)
or the k-NN local subspace of the training images (:class:`KnnMeasure`, which needs no
decoder).  As in the paper, every successful (example, restart) pair on a correctly classified
example counts (digest §7.1: "these counts span the restarts").  The attacks run once
(:func:`attacked_groups`), each measure after them (:func:`measure_groups`), through
:func:`manifold_robustness.attacks.evaluate.over_rows`.  Figures and files are the report's
(:mod:`manifold_robustness.report.distances`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from manifold_robustness import attacks
from manifold_robustness.attacks import evaluate
from manifold_robustness.manifolds import knn, projection

__all__ = ["GROUPS", "summarize", "DistanceReport", "distances", "check_batch", "ProjectionMeasure", "KnnMeasure"]

GROUPS = ("test", "regular", "on_manifold")
FIELDS = ("distance", "norm", "angle", "example", "restart")


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


@dataclasses.dataclass
class DistanceReport:
    """Per group in :data:`GROUPS` (numpy arrays, one value per measured image): distance
    ‖x̃ − π(x̃)‖ to the manifold; norm ‖x̃ − x‖ (0 for test images); angle between x̃ − x and the
    manifold's tangent space (degrees; NaN for test images and for manifolds without a tangent);
    example (index into the batch) and restart.  summary: group → :func:`summarize` of the
    distances, plus ``ratio`` (distance / norm) and ``angle`` summaries for the adversarial
    groups (the angle's only where the manifold has one)."""

    distance: dict[str, np.ndarray]
    norm: dict[str, np.ndarray]
    angle: dict[str, np.ndarray]
    example: dict[str, np.ndarray]
    restart: dict[str, np.ndarray]
    summary: dict[str, dict]

    def arrays(self, prefix: str = "distances") -> dict[str, np.ndarray]:
        """Flat ``<prefix>/<group>/<field>`` arrays, as the results store keeps them."""
        return {f"{prefix}/{g}/{f}": np.asarray(getattr(self, f)[g]) for g in GROUPS for f in FIELDS}


def check_batch(manifold, batch: Mapping) -> int:
    """The batch's size, after checking it has ``image``, ``label`` and the manifold's fields
    with one leading length."""
    need = ("image", "label", *manifold.fields)
    missing = [k for k in need if k not in batch]
    if missing:
        names = ", ".join(repr(k) for k in need[:-1]) + f" and {need[-1]!r}"
        raise ValueError(f"a batch on the {manifold.kind} manifold needs {names}; missing {missing}")
    b = int(np.shape(batch["label"])[0])
    for k in need:
        if np.shape(batch[k])[:1] != (b,):
            raise ValueError(f"batch[{k!r}] must have a leading axis of {b} examples; got {np.shape(batch[k])}")
    return b


@dataclasses.dataclass(frozen=True, eq=False)
class ProjectionMeasure:
    """Distance by projection onto ``manifold`` (from each example's own start) and the angle to
    its tangent space where it has one.  Called as ``measure(params, rows, key)`` on rows with
    ``x_tilde``, ``x``, ``label`` and the manifold's fields → {"distance", "norm", "angle"}."""

    manifold: Any
    config: projection.ProjectionConfig | None = None

    def params(self, context):
        return context

    @functools.partial(jax.jit, static_argnums=0)
    def __call__(self, ctx, rows, key):
        kw = {} if self.config is None else {"config": self.config}
        proj = self.manifold.project(rows["x_tilde"], rows, key, ctx, **kw)
        angle = self.manifold.tangent_angle(rows, rows["x_tilde"] - rows["x"], ctx)
        out = {"distance": proj.distance, "norm": projection.l2_distance(rows["x_tilde"], rows["x"])}
        out["angle"] = jnp.full_like(out["distance"], jnp.nan) if angle is None else angle
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class KnnMeasure:
    """The paper's k-NN local subspace distance (§5.4; :mod:`.knn`): ``k`` neighbours of the clean
    image in a PCA space of the training images, ``center`` "point" (main paper) or "mean"
    (supplement).  The test images' own distance is 0 for "point" and that of x − x̄ for "mean"."""

    index: knn.KnnIndex
    k: int = 50
    center: str = "point"

    @classmethod
    def fit(cls, train_images, k: int = 50, center: str = "point", num_components: int = 40) -> "KnnMeasure":
        """Index ``train_images`` (float32 in [0, 1] or uint8) with the paper's 40 PCA components."""
        if center not in knn.CENTERS:
            raise ValueError(f"center must be one of {knn.CENTERS}; got {center!r}")
        return cls(knn.build_index(train_images, num_components), int(k), center)

    def params(self, context):
        return self.index

    def __call__(self, index, rows, key):  # not jitted here: knn's own functions validate eagerly, then jit
        res = knn.knn_distance(index, rows["x"], rows["x_tilde"], self.k, self.center)
        return {"distance": res.distance, "test_distance": res.clean_distance, "angle": res.angle,
                "norm": projection.l2_distance(rows["x_tilde"], rows["x"])}


def _attack_all(logits_fn, batch, key, context, regular: attacks.Attack, on_manifold: attacks.Attack):
    """Both attacks on the whole batch in one program → per group (x̃ [R, B, …], ok [R, B], x [B, …])."""
    k_reg, k_on = key

    @jax.jit
    def run(batch, k_reg, k_on, context):
        reg = regular(logits_fn, batch, k_reg, context)
        on = on_manifold(logits_fn, batch, k_on, context)
        on_clean = on_manifold.clean(batch, context)
        ok_reg = attacks.correct(logits_fn, batch["image"], batch["label"])
        ok_on = attacks.correct(logits_fn, on_clean, batch["label"])
        return reg.x, reg.success & ok_reg[None], on.x, on.success & ok_on[None], on_clean

    reg_x, reg_ok, on_x, on_ok, on_clean = jax.device_get(run(batch, k_reg, k_on, context))
    image = np.asarray(batch["image"])
    return {"test": (image[None], np.ones((1, reg_ok.shape[1]), bool), image),
            "regular": (reg_x, reg_ok, image), "on_manifold": (on_x, on_ok, on_clean)}


def attacked_groups(manifold, logits_fn, batch: Mapping, key, *, regular: attacks.Attack, on_manifold: attacks.Attack,
                    context: Any = None) -> dict:
    """The three groups to measure: group → (x̃ float32[R, B, …], counted bool[R, B], reference x
    float32[B, …]); the attacks run once, whatever measures follow (:func:`measure_groups`).
    ``key``: one key, or the pair (regular attack's, on-manifold attack's)."""
    check_batch(manifold, batch)
    context = manifold.context if context is None else context
    batch = {k: jnp.asarray(batch[k]) for k in ("image", "label", *manifold.fields)}
    k_reg, k_on = key if isinstance(key, tuple) else jax.random.split(key)
    attacks.check_inputs(regular, logits_fn, batch, context)
    attacks.check_inputs(on_manifold, logits_fn, batch, context)
    return _attack_all(logits_fn, batch, (k_reg, k_on), context, regular, on_manifold)


def measure_groups(groups: dict, batch: Mapping, by, params, key, *, chunk: int = 500, mesh=None) -> DistanceReport:
    """Measure the :func:`attacked_groups` with ``by`` (``by(params, rows, key)`` on rows of
    ``x_tilde``, ``x`` and the batch's per-example fields other than ``image``).  The groups'
    rows go through ``by`` together, so a small experiment pads one chunk, not one per group."""
    if chunk < 1:
        raise ValueError(f"chunk must be positive; got {chunk}")
    host = {k: np.asarray(v) for k, v in batch.items() if k != "image"}
    picked = {g: np.nonzero(mask) for g, (_, mask, _) in groups.items()}  # (restart, example) per row
    rows = [{"x_tilde": np.asarray(x_adv)[restart, example], "x": np.asarray(x_ref)[example],
             **{k: v[example] for k, v in host.items()}}
            for (x_adv, _, x_ref), (restart, example) in zip(groups.values(), picked.values())]
    total = sum(example.size for _, example in picked.values())
    res = {}
    if total:
        res = evaluate.over_rows(by, params, {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}, key,
                                 chunk=evaluate.fitted_chunk(total, chunk), mesh=mesh)
    out = {f: {} for f in FIELDS}
    start = 0
    for g, (restart, example) in picked.items():
        part = {k: v[start:start + example.size] for k, v in res.items()}
        start += example.size
        if g == "test" and "test_distance" in part:  # a measure whose test-image distance is its own
            part["distance"] = part["test_distance"]
        for f in ("distance", "norm", "angle"):
            out[f][g] = part[f] if total else np.zeros(0, np.float32)
        if g == "test":
            out["angle"][g] = np.full_like(out["angle"][g], np.nan)
        out["example"][g], out["restart"][g] = example.astype(np.int32), restart.astype(np.int32)

    summary = {g: summarize(out["distance"][g]) for g in GROUPS}
    for g in ("regular", "on_manifold"):
        n = out["norm"][g]
        summary[g]["ratio"] = summarize(out["distance"][g] / np.maximum(n, 1e-12)) if n.size else summarize([])
        a = out["angle"][g]
        summary[g]["angle"] = summarize(a[~np.isnan(a)])
    return DistanceReport(**out, summary=summary)


def distances(manifold, logits_fn, batch: Mapping, key, *, regular: attacks.Attack, on_manifold: attacks.Attack,
              context: Any = None, config: projection.ProjectionConfig | None = None, chunk: int = 500,
              mesh=None, by=None) -> DistanceReport:
    """Claim 1 on ``manifold`` for one batch and one classifier (see the module docstring).

    logits_fn: float32[B, H, W, C] → logits; batch: ``image`` float32[B, H, W, C] in [0, 1],
    ``label`` int32[B] and the manifold's fields; context: the manifold's (default its own).
    Every image is measured by ``by`` (default: projected by the manifold's :meth:`project`,
    ``config`` its projection settings, default the manifold's), ``chunk`` images per compiled
    call.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be positive; got {chunk}")
    k_reg, k_on, k_proj = jax.random.split(key, 3)
    context = manifold.context if context is None else context
    groups = attacked_groups(manifold, logits_fn, batch, (k_reg, k_on), regular=regular, on_manifold=on_manifold,
                             context=context)
    by = ProjectionMeasure(manifold, config) if by is None else by
    rows = {k: batch[k] for k in ("image", "label", *manifold.fields)}
    return measure_groups(groups, rows, by, by.params(context), k_proj, chunk=chunk, mesh=mesh)

