"""Strategies score eligible targets; the registry finds them by name."""

from acode_placement.strategies.base import BuiltinStrategy, Strategy
from acode_placement.strategies.registry import ENTRY_POINT_GROUP, Registered, StrategyRegistry

__all__ = ["ENTRY_POINT_GROUP", "BuiltinStrategy", "Registered", "Strategy", "StrategyRegistry"]
