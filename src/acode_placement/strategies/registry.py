"""Strategies by name: the built-ins, plug-ins from entry points, and registered ones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points

from acode_placement.errors import DuplicateStrategyError, UnknownNameError
from acode_placement.strategies.auto import Auto
from acode_placement.strategies.base import Strategy
from acode_placement.strategies.cloud_first import CloudFirst
from acode_placement.strategies.cost_optimized import CostOptimized
from acode_placement.strategies.local_first import LocalFirst
from acode_placement.strategies.performance import Performance
from acode_placement.telemetry import get_logger

ENTRY_POINT_GROUP = "acode_placement.strategies"
_log = get_logger("acode_placement.strategies")


@dataclass(frozen=True, slots=True)
class Registered:
    strategy: Strategy
    origin: str  # "built-in", "entry point <value>", or "registered"

    @property
    def description(self) -> str:
        text = getattr(self.strategy, "description", None)
        if isinstance(text, str):
            return text
        doc = (type(self.strategy).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


class StrategyRegistry:
    """A name -> strategy map that refuses duplicates."""

    def __init__(self) -> None:
        self._entries: dict[str, Registered] = {}
        self.broken: dict[str, str] = {}  # plug-ins that failed to load, and why

    @classmethod
    def with_builtins(cls) -> StrategyRegistry:
        registry = cls()
        for strategy in (Auto(), LocalFirst(), CloudFirst(), CostOptimized(), Performance()):
            registry.register(strategy, origin="built-in")
        return registry

    @classmethod
    def default(cls) -> StrategyRegistry:
        """Built-ins plus every plug-in of the `acode_placement.strategies` group."""
        registry = cls.with_builtins()
        registry.load_entry_points()
        return registry

    def register(self, strategy: Strategy, *, origin: str = "registered") -> None:
        if not isinstance(strategy, Strategy):
            raise TypeError(
                f"{strategy!r} is not a strategy: it needs name, score() and can_handle()"
            )
        name = strategy.name
        if not isinstance(name, str) or not name:
            raise TypeError(f"{strategy!r} has no name")
        if name in self._entries:
            raise DuplicateStrategyError(
                f"strategy {name!r} is already registered ({self._entries[name].origin})"
            )
        self._entries[name] = Registered(strategy, origin)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load plug-ins; one that fails is recorded in `broken`, never fatal."""
        for ep in entry_points(group=group):
            try:
                self.register(_instantiate(ep.load()), origin=f"entry point {ep.value}")
            except Exception as exc:  # a broken plug-in must not stop the others
                self.broken[ep.name] = f"{type(exc).__name__}: {exc}"
                _log.warning("strategy.plugin_failed", entry_point=ep.name, error=str(exc))

    def get(self, name: str) -> Strategy:
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownNameError("strategy", name, self._entries)
        return entry.strategy

    def names(self) -> list[str]:
        return list(self._entries)

    def __iter__(self) -> Iterator[tuple[str, Registered]]:
        return iter(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def _instantiate(loaded: object) -> Strategy:
    """An entry point may name a strategy object, its class, or a factory."""
    if isinstance(loaded, Strategy) and not isinstance(loaded, type):
        return loaded
    if callable(loaded):
        made: Strategy = loaded()
        return made
    raise TypeError(f"{loaded!r} is neither a strategy nor a factory of one")
