"""Name → factory registries with one-line descriptions (attacks, training methods)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Entry(NamedTuple):
    """``needs``: the manifold kind the entry cannot run without ("true", "learned", "agnostic";
    see :mod:`manifold_robustness.manifolds.protocol`), None when it needs none."""

    factory: Callable[..., Any]
    description: str
    needs: str | None = None


class Registry(dict):
    """A dict of :class:`Entry` by name; ``register`` decorates a factory (``needs=``: the
    manifold kind it needs), ``lookup`` raises a ValueError listing every known name with its
    description."""

    def __init__(self, kind: str, plural: str):
        super().__init__()
        self.kind, self.plural = kind, plural

    def register(self, name: str, description: str, needs: str | None = None):
        def wrap(factory):
            self[name] = Entry(factory, description, needs)
            return factory

        return wrap

    def lookup(self, name: str) -> Entry:
        if name not in self:
            known = "\n".join(f"  {k}: {e.description}" for k, e in self.items())
            raise ValueError(f"unknown {self.kind} {name!r}; known {self.plural}:\n{known}")
        return self[name]

    def needs(self, name: str) -> str | None:
        """The manifold kind entry ``name`` needs (None: none)."""
        return self.lookup(name).needs
