"""Decisions in words (`words`) and JSON (`documents`): the only place that writes
prose about them. Everything is re-exported here: `explain.check_text`,
`explain.result_json`...
"""

from __future__ import annotations

from acode_placement.explain.documents import (
    candidate_json,
    lease_json,
    outcome_json,
    price_json,
    result_json,
    target_json,
)
from acode_placement.explain.format import gpu_text, gpu_wish, money, num
from acode_placement.explain.words import (
    cause,
    cause_counts,
    cause_name,
    check_text,
    discovery_text,
    failure_message,
    hardware_text,
    is_capacity,
    misses,
    nearest_miss,
    price_source,
    price_text,
    severity,
    unpriced_text,
    why,
)

__all__ = [
    "candidate_json",
    "cause",
    "cause_counts",
    "cause_name",
    "check_text",
    "discovery_text",
    "failure_message",
    "gpu_text",
    "gpu_wish",
    "hardware_text",
    "is_capacity",
    "lease_json",
    "misses",
    "money",
    "nearest_miss",
    "num",
    "outcome_json",
    "price_json",
    "price_source",
    "price_text",
    "result_json",
    "severity",
    "target_json",
    "unpriced_text",
    "why",
]
