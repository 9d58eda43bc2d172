"""How the engine is run: settings from the config file and environment, and the
options of one placement.

Defaults and bounds live here; where each value came from is `config`'s business.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from acode_placement.models.base import (
    MAX_SETTING_MINUTES,
    AwsApi,
    Count,
    Flag,
    HistoryDurability,
    LogFormat,
    LogLevel,
    Minutes,
    Mode,
    Model,
    Number,
    Seconds,
    TieBreaker,
)
from acode_placement.models.conditions import Pattern


def _argument(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("control characters are not allowed in a command")
    return value


def _program(command: tuple[str, ...]) -> tuple[str, ...]:
    if command and command[0].startswith("-"):
        raise ValueError("the command's first word is the program: it cannot start with '-'")
    return command


Argument = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_argument)]
FactName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")]


class FactSpec(Model):
    """A fact to discover on local and SSH targets: `command` is run as an argument
    list (never a shell string) and `pattern` (RE2) is searched in what it prints;
    its first group, or the whole match, is the fact's value."""

    command: Annotated[
        tuple[Argument, ...], Field(min_length=1, max_length=32), AfterValidator(_program)
    ]
    pattern: Pattern


class PlacementSettings(Model):
    """The `placement:` settings file."""

    strategy: Annotated[str, Field(min_length=1)] = "auto"
    mode: Mode = Mode.BURST
    fallback_enabled: Flag = True
    discovery_enabled: Flag = True
    require_verified: Flag = Field(
        default=False, description="only targets whose capabilities were verified are eligible"
    )
    cache_minutes: Annotated[Number, Field(ge=0, le=MAX_SETTING_MINUTES)] = Field(
        default=5, description="capability cache time-to-live"
    )
    decision_timeout: Seconds = Field(
        default=0.1,
        description="seconds a decision waits for discovery of a target of which nothing"
        " is known, at most (what is known is used at once and refreshed in the background)",
    )
    probe_timeout: Seconds = Field(default=3.0, description="seconds for one probe of a target")
    background_refresh: Flag = Field(
        default=True,
        description="a command that answered before its probes did hands them to a detached"
        " `discover` that fills the cache; false: they stop with the command",
    )
    facts: Annotated[dict[FactName, FactSpec], Field(max_length=64)] = Field(
        default_factory=dict,
        description="custom facts discovered on local and SSH targets (never set by a task)",
    )
    discovery_concurrency: Annotated[Count, Field(le=1024)] = Field(
        default=32, description="targets probed at once"
    )
    known_hosts: str = Field(
        default="~/.ssh/known_hosts", description="OpenSSH known_hosts file checked for SSH targets"
    )
    ec2_api: AwsApi = Field(
        default=AwsApi.AUTO,
        description="ask the EC2 and Price List APIs: auto (when credentials are configured),"
        " on, off (the shipped catalog only)",
    )
    reservation_grace_minutes: Annotated[Number, Field(ge=0, le=MAX_SETTING_MINUTES)] = Field(
        default=60,
        description="a reservation expires this long after the task's maxRuntimeMinutes"
        " (or defaultRuntimeMinutes)",
    )
    accept_new_host_keys: Flag = Field(
        default=False,
        description="trust an SSH host seen for the first time and add its key to knownHosts"
        " (a changed key is always refused)",
    )
    tie_breaker: TieBreaker = TieBreaker.FIRST
    default_runtime_minutes: Minutes = 60
    history: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the placement history"
        " (default: sqlite history.db in the user data directory)",
    )
    history_enabled: Flag = True
    history_durability: HistoryDurability = Field(
        default=HistoryDurability.DURABLE,
        description="durable: a placement answers once its record is committed;"
        " async: at once (a crash can lose the last records)",
    )
    history_retention_days: Annotated[Number, Field(gt=0, le=36_500)] | None = Field(
        default=None, description="delete records older than this (off by default)"
    )
    history_retention_count: Count | None = Field(
        default=None, description="keep at most this many records (off by default)"
    )
    log_level: LogLevel = LogLevel.WARNING
    log_format: LogFormat = Field(
        default=LogFormat.AUTO, description="json | console | auto (console on a terminal)"
    )


class PlacementOptions(Model):
    """How one decision is made. `decision_timeout` is in seconds."""

    strategy: Annotated[str, Field(min_length=1)] = "auto"
    mode: Mode = Mode.BURST
    fallback_enabled: Flag = True
    include_local: Flag = True
    include_cloud: Flag = True
    max_candidates: Count | None = Field(
        default=None, description="at most this many ranked targets kept for fallback"
    )
    decision_timeout: Seconds = 0.1
    tie_breaker: TieBreaker = TieBreaker.FIRST
    default_runtime_minutes: Minutes = 60
    discovery_enabled: Flag = True
    require_verified: Flag = Field(
        default=False,
        description="only targets whose capabilities were verified (probed now, a fresh"
        " cache, the EC2 API or catalog) are eligible; declared or stale values are not",
    )
