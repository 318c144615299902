"""Attacks: one engine (:mod:`.engine`), its parameterisations (:mod:`.spaces`), objectives,
the paper's attacks by name (:mod:`.api`), transfer from a source model (:mod:`.transferred`),
success metrics (:mod:`.metrics`) and batched evaluation over a dataset (:mod:`.evaluate`).  All take a plain ``logits_fn(x) -> logits``.
"""

from manifold_robustness.attacks.api import ATTACKS, Attack, check_inputs, make, make_optimizer
from manifold_robustness.attacks.engine import AttackConfig, AttackResult, Space, project, run, sign_gradient
from manifold_robustness.attacks.metrics import (
    correct,
    mean_norm_of_successes,
    success_rate,
    transfer,
    transfer_success_rate,
    worst_case_success_rate,
)
from manifold_robustness.attacks.transferred import Transfer

__all__ = [
    "ATTACKS", "Attack", "check_inputs", "make", "make_optimizer", "AttackConfig", "AttackResult", "Space",
    "project", "run", "sign_gradient", "correct", "mean_norm_of_successes", "success_rate",
    "transfer", "transfer_success_rate", "worst_case_success_rate", "Transfer",
]
