"""Name registries: activations, schedules, tasks and optimizers register here under a name."""

from __future__ import annotations

import difflib
from typing import Generic, Iterator, TypeVar

from relaxsim.errors import UnknownNameError

T = TypeVar("T")


def closest(name: str, choices) -> str:
    """Return ``"; did you mean X?"`` for the closest of ``choices``, or ``""``."""
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


class Registry(Generic[T]):
    """A mapping from names to objects of one kind; unknown names list the known ones."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""
        if obj is None:
            def decorator(o: T) -> T:
                self.register(name, o)
                return o
            return decorator
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def get(self, name: str, field: str | None = None) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            where = f"{field}: " if field else ""
            raise UnknownNameError(
                f"{where}unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}"
                + closest(name, self._items)
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

