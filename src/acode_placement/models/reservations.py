"""What a lease holds: the resources of one reserved task, what a target has in all,
what its active reservations hold, and the reservation itself. Plain frozen data;
the store is `history.reservations`, the arithmetic of free capacity `capacity`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Resources:
    """What one reserved task holds on a target."""

    cpu: float = 0.0
    memory_gb: float = 0.0
    gpus: float = 0.0


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a target has in all (None: not limited, or not known)."""

    cpu: float | None = None
    memory_gb: float | None = None
    gpus: float | None = None
    max_tasks: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """What the active reservations on a target hold."""

    cpu: float = 0.0
    memory_gb: float = 0.0
    gpus: float = 0.0
    tasks: int = 0

    @property
    def empty(self) -> bool:
        """Nothing of the cpu, memory or GPUs is held: all of them are free."""
        return not (self.cpu or self.memory_gb or self.gpus)

    def fits(self, wanted: Resources, capacity: Capacity) -> bool:
        checks = (
            (capacity.cpu, self.cpu, wanted.cpu),
            (capacity.memory_gb, self.memory_gb, wanted.memory_gb),
            (capacity.gpus, self.gpus, wanted.gpus),
        )
        for total, used, asked in checks:
            if total is not None and used + asked > total + 1e-9:
                return False
        return capacity.max_tasks is None or self.tasks + 1 <= capacity.max_tasks


@dataclass(frozen=True, slots=True)
class Reservation:
    """A lease on part of a target, until released or `expires_at`."""

    id: str
    target_id: str
    resources: Resources
    owner: str
    created_at: datetime
    expires_at: datetime
    request_id: str | None = None
    task_name: str | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
