"""What one finished run leaves in the results store, as plain data (no I/O here).

A *run* is one (dataset, method, N, seed).  Its :class:`RunRecord` has a JSON-able ``metrics``
dict and a flat dict of numpy ``arrays`` (per-example outcomes, distances, a small gallery of
images).  The runner writes them (``runner.store``); the report only reads them.

``metrics`` keys (``None`` where a measurement was not configured):

- ``test_error``: float, error on the evaluated test images (clean).
- ``train_error``, ``train_loss``: float, last epoch's (on the batches the optimiser saw).
- ``history``: {"loss": [epochs], "error": [epochs]}.
- ``attacks``: {attack: summary} for attack in :data:`ATTACK_NAMES` that ran; summary:
  ``success_rate`` (the paper's: over correct examples × restarts), ``worst_case_success_rate``
  (any restart), ``num_examples``, ``num_correct`` (the examples counted: classified correctly,
  for ``transfer`` by both the source and the evaluated model), ``restarts``, ``eps``, ``iterations``,
  ``mean_l2`` / ``mean_linf`` (image-space norm of successful perturbations; None if none).
- ``distances``: {group: summary} for group in :data:`DISTANCE_GROUPS` (``manifolds.measure.summarize``
  output; regular / on_manifold add ``ratio`` and ``angle`` summaries), or None.
- ``audit``: {attack: {examples, num_correct, paper_worst_case, strong_worst_case, iterations,
  restarts, objectives}} of the attack-strength audit, or None (``config.audit``).
- ``timing``: {"train_s": …, "attack_s": …, "audit_s": …, "distance_s": …} (wall seconds, shared by
  the seeds of one group).

``arrays`` keys (numpy; R = restarts, B = attacked examples):

- ``attacks/<attack>/{success bool[R,B], first_success int32[R,B], l2 float32[R,B],
  linf float32[R,B], correct bool[B], index int32[B]}`` (``index``: rows of the test split).
- ``distances/<group>/{distance, norm, angle float32[M], example, restart int32[M]}``.
- ``audit/<attack>/success`` bool[A]: the audited images broken by the paper attack or a strong one.
- ``gallery/{clean, regular, on_manifold, on_manifold_clean float32[K,H,W,C], label int32[K],
  regular_pred, on_manifold_pred int32[K]}``: a few test images with their adversarial examples
  (claim 2's figure); present when the run kept a gallery.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

from manifold_robustness.manifolds.protocol import KINDS

# The image-space evaluation attacks a config chooses (``eval.attacks``) → the key of their results:
# the paper's L∞ attack is "regular"; L2 PGD, C&W L2 and the transfer of the L∞ attack from a
# held-out source model (paper §5.3) sit beside it.
REGULAR_KEYS = {"linf": "regular", "l2": "regular_l2", "cw_l2": "regular_cw_l2", "transfer": "transfer"}
ATTACK_NAMES = ("regular", *(k.attack_key for k in KINDS.values()), "transformation",
                *(v for v in REGULAR_KEYS.values() if v != "regular"))
DISTANCE_GROUPS = ("test", "regular", "on_manifold")


@dataclasses.dataclass(frozen=True, order=True)
class RunKey:
    """One run of the grid.  ``name`` is its folder under the results root."""

    dataset: str
    method: str
    n: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.method}/n{self.n}/seed{self.seed}"

    @classmethod
    def parse(cls, name: str) -> "RunKey":
        m = re.fullmatch(r"([\w-]+)/([\w-]+)/n(\d+)/seed(\d+)", str(name).strip("/"))
        if m is None:
            raise ValueError(f"not a run name (dataset/method/nN/seedS): {name!r}")
        return cls(m[1], m[2], int(m[3]), int(m[4]))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class RunRecord:
    """A finished run: its key, JSON-able metrics and numpy arrays (see the module docstring)."""

    key: RunKey
    metrics: dict[str, Any]
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def attack(self, name: str) -> dict | None:
        """The summary of attack ``name`` or None when it did not run."""
        return (self.metrics.get("attacks") or {}).get(name)

    def success_rate(self, name: str, worst_case: bool = False) -> float | None:
        s = self.attack(name)
        if s is None:
            return None
        return s["worst_case_success_rate" if worst_case else "success_rate"]
