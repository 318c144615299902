"""Report files written atomically: to a temporary name beside the target, then renamed, so a
killed report leaves the previous file (or none), never a half-written one."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def _temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def save_figure(fig, path: str | Path, **savefig_kwargs) -> Path:
    """``fig.savefig(path)``, atomically; the format comes from the target's suffix."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **savefig_kwargs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    tmp = _temporary(path)
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
