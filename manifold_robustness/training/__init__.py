"""One training loop for every method (DESIGN principle 4).

``train`` (shell: device data, seeds under vmap, orbax checkpoints, progress) around pure epoch
and evaluation functions in :mod:`.loop`; methods are batch builders registered in
:mod:`.methods`.
"""

from manifold_robustness.training import adversarial as _adversarial  # noqa: F401 - registers the methods
from manifold_robustness.training.checkpoints import CheckpointStore, IncompatibleCheckpointError
from manifold_robustness.training.loop import TrainConfig, make_optimizer
from manifold_robustness.training.methods import METHODS, MethodContext, make_builder
from manifold_robustness.training.trainer import TrainResult, evaluate, train

__all__ = [
    "CheckpointStore", "IncompatibleCheckpointError", "TrainConfig", "make_optimizer", "METHODS",
    "MethodContext", "make_builder", "TrainResult", "evaluate", "train",
]
