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
        self._lazy: dict[str, str] = {}  # name -> "module:attribute", imported when first got

    def register_lazy(self, name: str, target: str) -> None:
        """Register the object ``target`` (``"package.module:attribute"``) under ``name`` without
        importing it: the name is known at once (config validation checks it), the module is
        imported by the first :meth:`get`."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._lazy[name] = target

    def register(self, name: str, obj: T | None = None):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""
        if obj is None:
            def decorator(o: T) -> T:
                self.register(name, o)
                return o
            return decorator
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def check(self, name: str, field: str | None = None) -> None:
        """Raise :class:`UnknownNameError` for a name not registered, importing nothing."""
        if name not in self:
            self.get(name, field)

    def get(self, name: str, field: str | None = None) -> T:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            if isinstance(name, str) and name in self._lazy:
                return self._resolve(name)
            where = f"{field}: " if field else ""
            raise UnknownNameError(
                f"{where}unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
                + closest(name, self.names())
            ) from None

    def _resolve(self, name: str) -> T:
        import importlib

        module, _, attr = self._lazy[name].partition(":")
        obj = getattr(importlib.import_module(module), attr)
        self._items.setdefault(name, obj)
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def names(self) -> list[str]:
        return sorted({*self._items, *self._lazy})


# The optimizers (relaxsim.training.optim), known by name to config validation without importing
# the training code (and the numba kernels it runs).
OPTIMIZERS: Registry = Registry("optimizer")
OPTIMIZERS.register_lazy("sgd", "relaxsim.training.optim:SGD")
OPTIMIZERS.register_lazy("adam", "relaxsim.training.optim:Adam")

