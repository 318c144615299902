"""Name → factory registries with one-line descriptions (attacks, training methods)."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Entry(NamedTuple):
    factory: Callable[..., Any]
    description: str


class Registry(dict):
    """A dict of :class:`Entry` by name; ``register`` decorates a factory, ``lookup`` raises a
    ValueError listing every known name with its description."""

    def __init__(self, kind: str, plural: str):
        super().__init__()
        self.kind, self.plural = kind, plural

    def register(self, name: str, description: str):
        def wrap(factory):
            self[name] = Entry(factory, description)
            return factory

        return wrap

    def lookup(self, name: str) -> Entry:
        if name not in self:
            known = "\n".join(f"  {k}: {e.description}" for k, e in self.items())
            raise ValueError(f"unknown {self.kind} {name!r}; known {self.plural}:\n{known}")
        return self[name]
