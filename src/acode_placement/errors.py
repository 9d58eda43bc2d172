"""Exceptions. `InputError` is bad input: the command line prints it as one line, exit 2."""

from __future__ import annotations

from collections.abc import Iterable


class PlacementError(Exception):
    """Base of every error acode-placement raises on purpose."""


class InputError(PlacementError):
    """A file, flag or argument is wrong. The message is one line naming where."""


class UnknownNameError(InputError):
    """A strategy or mode name that does not exist; the message lists those that do."""

    def __init__(self, what: str, name: str, available: Iterable[str], where: str = "") -> None:
        self.name = name
        self.available = sorted(available)
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}unknown {what} {name!r}; available: {', '.join(self.available)}")


class DuplicateStrategyError(PlacementError, ValueError):
    """A strategy name that is already registered."""


class StrategyError(PlacementError):
    """A strategy broke its contract (raised, or scored outside (0, 1])."""


class ReservationError(PlacementError):
    """A reservation that does not exist or has expired; or the store failed."""


class StoreUnavailableError(ReservationError):
    """The reservation database cannot be used now (unreachable, or its file was
    deleted, replaced or made read-only under this process): no lease is granted."""


class AwsApiError(Exception):
    """An AWS call failed; the message says why in a person's words. Always caught:
    ec2 targets then use the shipped catalog."""


class AcquireError(PlacementError):
    """Raised by an acquirer when a chosen target cannot be had.

    `retryable` failures (unreachable, capacity, launch failed) let the engine try
    the next ranked target; fatal ones stop the fallback at once.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
