"""The vocabulary every model shares: bounded numbers, names and ids, enums, and the
pydantic base (camelCase keys, frozen, no unknown keys, no inf or nan).

Only types and their validators live here; no model of a task, target or result.
"""

from __future__ import annotations

import enum
import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)
from pydantic.alias_generators import to_camel

# A tool name never starts with '-', so that no probe, shell or program can take it
# for an option, however it is passed.
TOOL_NAME_PATTERN = r"^[A-Za-z0-9._+][A-Za-z0-9._+-]{0,63}$"
_TOOL_NAME = re.compile(TOOL_NAME_PATTERN)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")


def _check_tool_name(value: str) -> str:
    if not _TOOL_NAME.fullmatch(value):
        raise ValueError(
            f"invalid tool name {value!r}: use 1-64 letters, digits, '.', '_', '+' or '-',"
            " not starting with '-'"
        )
    return value


def _check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(
            f"invalid id {value!r}: use 1-128 letters, digits, '.', '_', ':', '/', '@' or '-',"
            " starting with a letter or digit"
        )
    return value


_HOST = re.compile(r"^[A-Za-z0-9_\[][A-Za-z0-9._:%\[\]-]{0,252}$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}$")


def _check_host(value: str) -> str:
    """A host name or address: never an option (`-oProxyCommand=...`), a space or a
    control character, whatever later takes it."""
    if not _HOST.fullmatch(value):
        raise ValueError(
            f"invalid host {value!r}: a name or an address (letters, digits, '.', '-', ':',"
            " '[', ']'), not starting with '-'"
        )
    return value


def _check_user(value: str) -> str:
    if not _USER.fullmatch(value):
        raise ValueError(
            f"invalid user {value!r}: letters, digits, '.', '_', '@' or '-', not starting with '-'"
        )
    return value


def _check_path(value: str) -> str:
    if not value or not value.isprintable():
        raise ValueError("invalid path: empty, or with a control character")
    return value


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _not_bool(value: object) -> object:
    """YAML's `true` is not the number 1 (pydantic's lax mode would take it as one)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


def _not_number(value: object) -> object:
    """A flag is true or false (or, from the environment, a word); never 0 or 1.5."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


# Bounds that keep every later sum, product and date within range: no amount a real
# machine or bill reaches comes near them, and no arithmetic on them overflows.
MAX_AMOUNT = 1e12  # CPUs, GB, GPUs, USD
MAX_MINUTES = 5_256_000  # ten years: runtimes (a lease ends that much later at most)
MAX_SETTING_MINUTES = 525_600  # one year: cache lifetime, lease grace
MAX_SECONDS = 3600.0  # timeouts
MAX_COUNT = 1_000_000_000

ToolName = Annotated[str, AfterValidator(_check_tool_name)]
TargetId = Annotated[str, AfterValidator(_check_id)]
Number = Annotated[float, BeforeValidator(_not_bool)]
NonNegative = Annotated[Number, Field(ge=0, le=MAX_AMOUNT)]
Positive = Annotated[Number, Field(gt=0, le=MAX_AMOUNT)]
Minutes = Annotated[Number, Field(gt=0, le=MAX_MINUTES)]
Seconds = Annotated[Number, Field(gt=0, le=MAX_SECONDS)]
Count = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=MAX_COUNT)]
Flag = Annotated[bool, BeforeValidator(_not_number)]
ComputeCapability = Annotated[Number, Field(ge=0, le=100)]  # major.minor: 8.0, 9.0, 12.1


def _version_text(value: object) -> object:
    """A version as text: YAML reads `cuda: 12.4` as a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


# A version a target states (driver 535.104.05, CUDA 12.4): letters, digits, . + _ -
VersionText = Annotated[
    str,
    BeforeValidator(_version_text),
    Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$"),
]
ModelNames = Annotated[
    tuple[Annotated[str, Field(min_length=1)], ...],
    BeforeValidator(_one_or_many, json_schema_input_type=str | list[str]),
]
# A custom value or label value as YAML and JSON give it. An integer is kept to 64
# bits: the rules compare numbers as floats and the words print them, and an
# integer past a float's range (a JSON body can carry 4,000 digits) made both raise.
MAX_INTEGER = 2**63 - 1


def _integer_in_range(value: object) -> object:
    huge = isinstance(value, int) and not -MAX_INTEGER - 1 <= value <= MAX_INTEGER
    if huge:  # (a bool is 0 or 1)
        raise ValueError(f"an integer must be within +-{MAX_INTEGER} (64 bits)")
    return value


Scalar = Annotated[str | int | float | bool, BeforeValidator(_integer_in_range)]


class OS(enum.StrEnum):
    LINUX = "linux"
    WINDOWS = "windows"
    MACOS = "macos"


class Arch(enum.StrEnum):
    X64 = "x64"
    ARM64 = "arm64"


class GpuVendor(enum.StrEnum):
    NVIDIA = "nvidia"
    AMD = "amd"
    INTEL = "intel"
    APPLE = "apple"


class GpuTypeWanted(enum.StrEnum):
    NVIDIA = "nvidia"
    AMD = "amd"
    INTEL = "intel"
    APPLE = "apple"
    ANY = "any"


class Mode(enum.StrEnum):
    LOCAL_ONLY = "local-only"
    AIRGAPPED = "airgapped"
    BURST = "burst"


class AwsApi(enum.StrEnum):
    """When to ask AWS. `auto`: when credentials are configured (environment, shared
    files, SSO, a container role), never probing the instance-metadata service;
    `on`: always, with boto3's whole credential chain; `off`: never."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(enum.StrEnum):
    JSON = "json"
    CONSOLE = "console"
    AUTO = "auto"


class HistoryDurability(enum.StrEnum):
    """`durable`: a placement answers once its record is committed. `async`: at once;
    a crash can lose the records not committed yet (at most one transaction's worth)."""

    DURABLE = "durable"
    ASYNC = "async"


class TieBreaker(enum.StrEnum):
    FIRST = "first"
    ID = "id"


class TargetKind(enum.StrEnum):
    LOCAL = "local"
    SSH = "ssh"
    EC2 = "ec2"


class Reason(enum.StrEnum):
    ONLY_OPTION = "OnlyOption"
    HIGHEST_SCORE = "HighestScore"
    COST_OPTIMAL = "CostOptimal"
    LOCAL_PREFERRED = "LocalPreferred"
    CAPABILITY_MATCH = "CapabilityMatch"
    NO_VALID_TARGET = "NoValidTarget"
    MODE_RESTRICTED = "ModeRestricted"


class Model(BaseModel):
    """The base of every input model: camelCase keys (snake_case names accepted too),
    frozen, no unknown key, no inf or nan."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        allow_inf_nan=False,  # inf and nan are no amounts; arithmetic on them misleads
    )


def _no_nul(value: str) -> str:
    """A NUL cannot be stored in a PostgreSQL text column; no name needs one."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


MAX_NAME = 256  # characters: a task name's and an owner's column in the history
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME), AfterValidator(_no_nul)]
