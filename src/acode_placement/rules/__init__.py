"""Requirement rules: each kind of hard requirement (and soft wish) declared once.

`builtin` declares every built-in kind (its words, cause and rule); `base` holds the
shapes a rule takes and derives, from one declaration, the checks of a target, the
fast path and the fleet's column masks; `table` holds the rules in force and the
plan of one decision; `kinds` the registry `explain` reads words from; `selectors`
how names compare. `matching` and `columns` work from here and restate nothing.
"""

from __future__ import annotations

from acode_placement.rules.base import (
    Compare,
    Each,
    Rule,
    Values,
    capability,
    read,
    wished,
)
from acode_placement.rules.groups import Group, Pool
from acode_placement.rules.kinds import Kind, kind_of
from acode_placement.rules.selectors import Avoids, Selects, canonical, model_matches, selects
from acode_placement.rules.table import Plan, plan_for, register, registered, rules, unregister

__all__ = [
    "Avoids",
    "Compare",
    "Each",
    "Group",
    "Kind",
    "Plan",
    "Pool",
    "Rule",
    "Selects",
    "Values",
    "canonical",
    "capability",
    "kind_of",
    "model_matches",
    "plan_for",
    "read",
    "register",
    "registered",
    "rules",
    "selects",
    "unregister",
    "wished",
]
