"""Values kept for a sequence of immutable objects, found again by their identity.

A caller that places on the same list of targets again and again (a worker, the
service) should not pay per call for what depends only on those objects: the
fleets expanded and priced, the declared capabilities. Targets and capabilities are
frozen, so the same objects give the same answer; checking identity costs a pointer
comparison per object, against microseconds per object to rebuild. The objects are
held while cached, so their ids cannot be reused by others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import is_
from typing import Generic, TypeVar

T = TypeVar("T")
V = TypeVar("V")


class IdentityMemo(Generic[T, V]):
    """The value last computed for exactly these objects (identity, not equality)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[tuple[T, ...], V] | None = None

    def find(self, objects: Sequence[T]) -> V | None:
        """The value kept for these very objects, in this order; None otherwise."""
        last = self._last  # one read: another thread may replace it meanwhile
        if last is None:
            return None
        if last[0] is objects:  # the very tuple kept (immutable): nothing to compare
            return last[1]
        if len(last[0]) != len(objects):
            return None
        return last[1] if all(map(is_, objects, last[0])) else None

    def keep(self, objects: Sequence[T], value: V) -> None:
        self._last = (tuple(objects), value)  # a tuple given is kept as it is

    def get(self, objects: Sequence[T], compute: Callable[[Sequence[T]], V]) -> V:
        """The kept value, or `compute(objects)` kept for next time."""
        found = self.find(objects)
        if found is None:
            found = compute(objects)
            self.keep(objects, found)
        return found
