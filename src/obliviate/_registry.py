"""One registry type for every "things by name" table: models, datasets, attacks, families, stopping
rules, SISA aggregations.

A name registered twice raises unless ``force=True`` (a silent overwrite would swap a built-in for a
plug-in without anyone noticing), and an unknown name raises :class:`~obliviate.errors.UnknownNameError`
whose "choose one of" list is derived from what is registered, so no message goes stale.

>>> colours = Registry[int]("colour")
>>> colours.register("red", 1)
1
>>> colours.register("red", 2)
Traceback (most recent call last):
...
obliviate.errors.ConfigError: colour 'red' is already registered; pass force=True to replace it
>>> colours.register("red", 2, force=True)
2
>>> colours.get("blue")
Traceback (most recent call last):
...
obliviate.errors.UnknownNameError: unknown colour 'blue'; choose one of: red
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects of one kind by name. ``kind`` is the noun used in messages ("model", "stopping rule").

    ``ordered=True`` keeps registration order in :meth:`names` (for tables whose order means something,
    such as the survey's attack families); otherwise names come back sorted.
    """

    def __init__(self, kind: str, *, ordered: bool = False) -> None:
        self.kind = kind
        self._ordered = ordered
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T, *, force: bool = False) -> T:
        """Add ``obj`` under ``name`` and return it; an existing name raises unless ``force``."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"Expected a {self.kind} name to be a non-empty string, but got {name!r}")
        if name in self._items and not force:
            raise ConfigError(f"{self.kind} {name!r} is already registered; pass force=True to replace it")
        self._items[name] = obj
        return obj

    def decorator(self, name: str, *, force: bool = False) -> Callable[[T], T]:
        """``@registry.decorator("name")``: register the decorated object and return it unchanged."""

        def deco(obj: T) -> T:
            return self.register(name, obj, force=force)

        return deco

    def get(self, name: str) -> T:
        """The object under ``name``; an unknown name raises listing the registered ones."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: object) -> str:
        return f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names()) or '(none registered)'}"

    def names(self) -> list[str]:
        return list(self._items) if self._ordered else sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"
