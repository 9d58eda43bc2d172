"""What discovery found, per target, kept across command runs in one JSON file.

The file lives under the user's data directory. Writers take an advisory lock,
re-read the file, merge (the newest discovery of a target wins) and replace it
atomically, so two processes never lose each other's entries and a crash never
leaves half a file. A file that cannot be read is set aside, never trusted.

The file also keeps each target's last failed probe (status, cause, when, how many
in a row), so that the back-off after a failure holds across command runs: three
`discover` runs against a silent host wait for it once, not three times. A failure
older than the target's last good discovery is over.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import ValidationError

from acode_placement.models import (
    VERSION_OF,
    AnyTarget,
    Capabilities,
    DiscoveryStatus,
    Ec2Target,
    SshTarget,
)
from acode_placement.safe import read_regular
from acode_placement.telemetry import get_logger

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: atomic replace without a lock
    fcntl = None  # type: ignore[assignment]

_log = get_logger("acode_placement.discovery")
FORMAT = 1
CACHE_ENV = "ACODE_PLACEMENT_CACHE"
MAX_BYTES = 64 * 1024 * 1024
# Clocks of machines sharing a home directory differ a little; an entry dated later
# than this ahead of now was not written by a sane clock and is not trusted.
CLOCK_SKEW = timedelta(minutes=5)


def default_path() -> Path:
    """`$ACODE_PLACEMENT_CACHE`, else `capabilities.json` in the user data directory."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_data_dir("acode-placement")) / "capabilities.json"


def fingerprint(target: AnyTarget) -> str:
    """What a cached entry is about: the machine, not the target's id.

    Changing an SSH target's host, port or user (or the EC2 type or region)
    invalidates what was found; a local target is this host, by name, so a home
    directory shared by several machines never mixes them up.
    """
    if isinstance(target, SshTarget):
        where = f"ssh:{target.user or ''}@{target.host}:{target.port}"
    elif isinstance(target, Ec2Target):
        where = f"ec2:{target.region}:{target.instance_type}"
    else:
        where = f"local:{socket.gethostname()}"
    return _digest(where)


@functools.lru_cache(maxsize=4096)  # asked for every target on every lookup
def _digest(where: str) -> str:
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def age_words(seconds: float) -> str:
    """An age as a person says it: `40 s`, `12 min`, `3.5 h`, `2.0 days`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@dataclass(frozen=True, slots=True)
class Entry:
    """One target's discovered capabilities and which tools were asked about."""

    fingerprint: str
    capabilities: Capabilities
    tools_checked: frozenset[str]
    discovered_at: datetime
    notes: tuple[str, ...] = ()
    source: str = "probe"  # who answered (see `ProbeReport.source`)

    def age(self, now: datetime) -> float:
        """Seconds since discovery; infinite for an entry dated after `now` (more than a
        second of skew): a date from the future is not trusted for any time-to-live."""
        seconds = (now - self.discovered_at).total_seconds()
        return math.inf if seconds < -1.0 else max(0.0, seconds)

    def knows(self, tools: frozenset[str]) -> bool:
        return tools <= self.tools_checked

    def with_tools(
        self,
        found: tuple[str, ...],
        checked: frozenset[str],
        versions: Mapping[str, str] | None = None,
    ) -> Entry:
        """This entry with the answers of a tools-only probe folded in: the tools and
        the versions it was asked about (`version:NAME`) replace what was known."""
        kept = {t for t in self.capabilities.tools if t not in checked}
        tools = tuple(sorted(kept | set(found)))
        stated = {
            name: version
            for name, version in self.capabilities.tool_versions.items()
            if VERSION_OF + name not in checked and name in tools
        }
        stated.update(versions or {})
        update = {"tools": tools, "tool_versions": stated}
        return replace(
            self,
            capabilities=self.capabilities.model_copy(update=update),
            tools_checked=self.tools_checked | checked,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "capabilities": self.capabilities.model_dump(mode="json", exclude_none=True),
            "toolsChecked": sorted(self.tools_checked),
            "discoveredAt": self.discovered_at.isoformat(),
            "notes": list(self.notes),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Any) -> Entry:
        """An entry as written by `to_json`; ValueError (or KeyError, TypeError) else."""
        at = datetime.fromisoformat(data["discoveredAt"])
        if at.tzinfo is None:
            raise ValueError(f"discoveredAt {data['discoveredAt']!r} has no time zone")
        return cls(
            fingerprint=str(data["fingerprint"]),
            capabilities=Capabilities.model_validate(data["capabilities"]),
            tools_checked=frozenset(str(t) for t in data["toolsChecked"]),
            discovered_at=at,
            notes=tuple(str(n) for n in data.get("notes", ())),
            source=str(data.get("source", "probe")),
        )


@dataclass(frozen=True, slots=True)
class Failure:
    """A target's last failed probe: what it said, when, and how many in a row."""

    fingerprint: str
    status: DiscoveryStatus
    cause: str
    at: datetime
    in_a_row: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "status": self.status.value,
            "cause": self.cause,
            "at": self.at.isoformat(),
            "inARow": self.in_a_row,
        }

    @classmethod
    def from_json(cls, data: Any) -> Failure:
        at = datetime.fromisoformat(data["at"])
        if at.tzinfo is None:
            raise ValueError(f"at {data['at']!r} has no time zone")
        in_a_row = int(data["inARow"])
        if not 1 <= in_a_row <= 1_000_000:
            raise ValueError(f"inARow {in_a_row} is out of range")
        return cls(
            fingerprint=str(data["fingerprint"]),
            status=DiscoveryStatus(data["status"]),
            cause=str(data["cause"])[:300],
            at=at,
            in_a_row=in_a_row,
        )


class CapabilityCache:
    """Entries (and last failures) by target id; `path=None` keeps them in memory only."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._entries: dict[str, Entry] | None = None
        self._failures: dict[str, Failure] = {}
        self._dirty: set[str] = set()

    def get(self, target_id: str) -> Entry | None:
        return self._loaded().get(target_id)

    def put(self, target_id: str, entry: Entry) -> None:
        self._loaded()[target_id] = entry
        self._dirty.add(target_id)

    def failure(self, target_id: str) -> Failure | None:
        """The target's last failed probe, unless a good discovery came after it."""
        self._loaded()
        failed = self._failures.get(target_id)
        entry = self.get(target_id)
        if failed is None or (entry is not None and entry.discovered_at >= failed.at):
            return None
        return failed

    def put_failure(self, target_id: str, failure: Failure) -> None:
        self._loaded()
        self._failures[target_id] = failure
        self._dirty.add(target_id)

    def flush(self) -> None:
        """Write changed entries, merged with what other processes wrote meanwhile."""
        if self.path is None or not self._dirty:
            return
        mine = self._loaded()
        changed, self._dirty = self._dirty, set()
        if self.path.exists() and not self.path.is_file():
            # a FIFO or a device where the cache should be: never replace it
            _log.warning("discovery.cache_not_saved", path=str(self.path), error="not a file")
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._locked():
                merged, failures = self._read()
                for target_id in changed:
                    theirs = merged.get(target_id)
                    ours = mine.get(target_id)
                    if ours is not None and (
                        theirs is None or theirs.discovered_at <= ours.discovered_at
                    ):
                        merged[target_id] = ours
                    failed = self._failures.get(target_id)
                    other = failures.get(target_id)
                    if failed is not None and (other is None or other.at <= failed.at):
                        failures[target_id] = failed
                self._write(merged, failures)
        except OSError as exc:
            _log.warning("discovery.cache_not_saved", path=str(self.path), error=str(exc))

    def _loaded(self) -> dict[str, Entry]:
        if self._entries is None:
            read, failures = self._read() if self.path is not None else ({}, {})
            self._entries = read
            self._failures = {**failures, **self._failures}
        return self._entries

    def _read(self) -> tuple[dict[str, Entry], dict[str, Failure]]:
        """The file's entries and failures. A file that cannot be trusted (not JSON,
        another format, a bad entry, not a regular file) is moved aside as
        `<name>.unreadable-<UTC time>` and the cache starts empty; entries and failures
        dated in the future are dropped."""
        assert self.path is not None
        try:
            document = json.loads(read_regular(self.path, MAX_BYTES).decode("utf-8"))
            if document.get("format") != FORMAT:
                raise ValueError(f"format {document.get('format')!r}, expected {FORMAT}")
            entries = {str(k): Entry.from_json(v) for k, v in document["targets"].items()}
            failures = {
                str(k): Failure.from_json(v) for k, v in document.get("failures", {}).items()
            }
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
            self._set_aside(str(exc))
            return {}, {}
        latest = datetime.now(UTC) + CLOCK_SKEW
        future = [k for k, e in entries.items() if e.discovered_at > latest]
        for target_id in future:
            _log.warning(
                "discovery.cache_entry_from_the_future",
                target=target_id,
                discovered_at=entries[target_id].discovered_at.isoformat(),
            )
            del entries[target_id]
        return entries, {k: f for k, f in failures.items() if f.at <= latest}

    def _set_aside(self, error: str) -> None:
        assert self.path is not None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = self.path.with_name(f"{self.path.name}.unreadable-{stamp}")
        try:
            if self.path.is_file():
                self.path.replace(aside)
            else:  # a FIFO or a device where the cache should be: leave it, name it
                aside = self.path
        except OSError:
            aside = self.path
        _log.warning(
            "discovery.cache_unreadable",
            path=str(self.path),
            moved_to=str(aside),
            error=error[:300],
        )

    def _write(self, entries: dict[str, Entry], failures: dict[str, Failure]) -> None:
        assert self.path is not None
        # a failure a later discovery ended is dropped, so the file does not grow
        current = {
            k: f.to_json()
            for k, f in failures.items()
            if k not in entries or entries[k].discovered_at < f.at
        }
        document = {
            "format": FORMAT,
            "targets": {k: e.to_json() for k, e in entries.items()},
            "failures": current,
        }
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".capabilities-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(document, file, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.path is not None
        if fcntl is None:  # pragma: no cover
            yield
            return
        with self.path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
