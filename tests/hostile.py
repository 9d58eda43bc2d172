"""Helpers of the hostile-input suite (tests/test_hostile_*.py): run the real console
script in an isolated home, and assert the properties every attack must leave true."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "acode-placement"
SECRETS = ("hunter2", "s3cr3t", "/secret/key", "topsecretuser", "id_ed25519_hostile")
# Control characters that would reach a terminal raw (tab and newline are ordinary).
_RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def environment(home: Path, **extra: str) -> dict[str, str]:
    """An environment with its own config, data and cache, and nothing of the caller's
    acode-placement or AWS settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACODE_PLACEMENT_", "AWS_"))}
    env.update(
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        HOME=str(home),
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent/aws-config",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-credentials",
        ACODE_PLACEMENT_EC2_API="off",
        # no detached refresh after a command (a fleet of 20,000 made-up hosts would be
        # probed for minutes); tests/test_background_refresh.py turns it back on
        ACODE_PLACEMENT_BACKGROUND_REFRESH="false",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def run(
    home: Path,
    *args: str | Path,
    timeout: float = 60,
    stdin: str = "",
    cwd: Path | None = None,
    **env: str,
) -> Ran:
    """The console script, as a user runs it, with `home` as its home (and working
    directory unless `cwd` says another)."""
    done = subprocess.run(
        [str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        errors="surrogateescape",
        timeout=timeout,
        input=stdin,
        env=environment(home, **env),
        cwd=cwd or home,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def assert_sane(ran: Ran) -> None:
    """What every run must show, whatever it was fed: an exit status of the contract,
    no traceback, no secret, no raw control character on either stream."""
    assert ran.code in (0, 1, 2), (ran.code, ran.err[-2000:])
    for stream in (ran.out, ran.err):
        assert "Traceback" not in stream, stream[-3000:]
        assert not _RAW_CONTROL.search(stream), repr(stream[-500:])
        for secret in SECRETS:
            assert secret not in stream, f"{secret!r} leaked: {stream[-500:]!r}"


def assert_refused(ran: Ran, *mentions: str, as_json: bool = False) -> str:
    """Bad input: exit 2, one line `acode-placement: error: ...` naming `mentions`
    (`as_json`: the line is `{"error": ..., "exitStatus": 2}`, as under `--json`)."""
    assert_sane(ran)
    assert ran.code == 2, (ran.code, ran.out[-500:], ran.err[-1000:])
    assert len(ran.err_lines) == 1, ran.err
    line = ran.err_lines[0]
    if as_json:
        error = json.loads(line)
        assert error["exitStatus"] == 2, line
        line = f"acode-placement: error: {error['error']}"
    assert line.startswith("acode-placement: error: "), line
    for mention in mentions:
        assert mention in line, (mention, line)
    return line
