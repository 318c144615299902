"""Where a dataset's original files live, and the error that says how to provide them.

Nothing here downloads anything.  Each dataset has one source folder: the ``source_dir`` argument
of :func:`manifold_robustness.data.load`, else the dataset's environment variable, else a default
(for Fashion-MNIST, the folder Debian's ``dataset-fashion-mnist`` package installs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence


class MissingDatasetFilesError(FileNotFoundError):
    """A dataset's original files are not where the loader looked; the message says what to put where."""


def resolve(source_dir: str | os.PathLike | None, env_var: str, default: Callable[[], Path]) -> Path:
    """``source_dir``, else ``$env_var``, else ``default()``; ``~`` is expanded."""
    chosen = source_dir or os.environ.get(env_var) or default()
    return Path(chosen).expanduser()


def missing_files_error(
    title: str,
    directory: Path,
    missing: Sequence[str],
    env_var: str,
    how_to_get: str,
    more: int = 0,
) -> MissingDatasetFilesError:
    """The error for ``missing`` files of ``title`` in ``directory``.

    ``missing`` lists file names relative to ``directory``; ``more`` counts further missing files
    that were not listed.  ``how_to_get`` says where the files come from.
    """
    listing = "\n".join(f"    {name}" for name in missing)
    if more:
        listing += f"\n    ... and {more} more"
    where = "does not exist" if not directory.exists() else "lacks them"
    return MissingDatasetFilesError(
        f"{title}: files missing in {directory} (the folder {where}):\n{listing}\n"
        f"Put these files in {directory}, or put them in another folder and point to it with the "
        f"environment variable {env_var} (or load(..., source_dir=FOLDER)). "
        f"Nothing is downloaded automatically.\n{how_to_get}"
    )
