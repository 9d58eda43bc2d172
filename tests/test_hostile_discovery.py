"""Hostile machines: the real probe (probe.sh under sh) run with stand-in tools on PATH
that lie, flood, hang or inject lines; tool names that look like options; and an
interrupted command. A lie beyond any real machine is refused with its cause and the
last good facts are kept; nothing a probe starts outlives it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acode_placement.discovery.cache import CapabilityCache, fingerprint
from acode_placement.discovery.parse import ProbeOutputError, parse_probe
from acode_placement.discovery.probes import LocalProbe, ProbeError, script, sh_arguments
from acode_placement.discovery.service import Discovery
from acode_placement.discovery.ssh import SshProbe
from acode_placement.models import Known, LocalTarget, SshTarget, TargetKind
from tests.hostile import SCRIPT, Ran, assert_sane, environment

LOCAL = LocalTarget(id="local")
HARDWARE = ("os", "arch", "cpu", "mem_kb", "disk_kb")


def probe(timeout: float = 5.0, tools: frozenset[str] = frozenset()) -> object:
    return asyncio.run(LocalProbe(timeout).probe(LOCAL, tools))


def processes_with(marker: str) -> list[int]:
    """Pids whose command line holds `marker` (what a probe must not leave behind)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(int(entry.name))
    return found


LIES = {
    "nvidia-200000-gpus": (
        "nvidia-smi",
        'i=0; while [ $i -lt 200000 ]; do echo "$i, NVIDIA H100, 81559, 535.1"; i=$((i+1)); done',
        "printed over|implausible",
    ),
    "nvidia-vram-beyond-any-card": (
        "nvidia-smi",
        'echo "0, NVIDIA H100, 9000000000, 535.1"',
        "implausible GPU memory",
    ),
    "nvidia-floods": ("nvidia-smi", "yes '0, NVIDIA H100, 81559, 535.1'", "printed over"),
    "nvidia-injects-lines": (
        "nvidia-smi",
        "printf '0, A, 1, 1\\nnvidia-smi-end 0\\ncpu 1000000\\n'",
        "given twice",
    ),
    "nproc-400-digits": ("nproc", "printf '%0400d\\n' 7", "not a whole number"),
    "nproc-exponent": ("nproc", "echo 1e32", "not a whole number"),
    "nproc-too-many": ("nproc", "echo 1000000", "implausible cpu"),
    "nproc-zero": ("nproc", "echo 0", "implausible cpu"),
    "nproc-and-getconf-silent": ("nproc", "exit 1", "incomplete: no cpu"),
    "df-beyond-exabytes": (
        "df",
        "echo 'Filesystem 1024-blocks Used Available Capacity Mounted'; "
        "echo '/dev/x 1 1 99999999999999999999999999 1% /'",
        "not a whole number",
    ),
    "df-huge-but-short": (
        "df",
        "echo 'Filesystem 1024-blocks Used Available Capacity Mounted'; "
        "echo '/dev/x 1 1 99999999999999999999 1% /'",
        "implausible disk",
    ),
}


@pytest.mark.parametrize(("tool", "body", "cause"), LIES.values(), ids=LIES.keys())
def test_a_lying_machine_is_refused_and_its_last_good_facts_kept(
    stand_in: Callable[[str, str], Path],
    tmp_path: Path,
    tool: str,
    body: str,
    cause: str,
) -> None:
    discovery = Discovery(
        {TargetKind.LOCAL: LocalProbe(timeout=10)},
        CapabilityCache(tmp_path / "cache.json"),
        ttl=timedelta(0),
        retry_after=timedelta(0),
    )
    (good,) = asyncio.run(discovery.lookup([LOCAL], timeout=10))
    assert good.status == "fresh" and good.capabilities.cpu
    if tool == "nproc":
        stand_in("getconf", "exit 1")  # no way round the lie
    stand_in(tool, body)
    (after,) = asyncio.run(discovery.lookup([LOCAL], refresh=True, timeout=10))
    assert after.status == "stale", after
    assert after.capabilities.cpu == good.capabilities.cpu
    assert after.capabilities.memory_gb == good.capabilities.memory_gb
    assert re.search(cause, after.cause or ""), after.cause


def test_a_gpu_model_full_of_escapes_is_kept_as_data(stand_in: Callable[[str, str], Path]) -> None:
    stand_in("nvidia-smi", "printf '0, [/]\\033[2J\\033]8;;http://x\\007A100, 40960, 535.1\\n'")
    report = probe()
    gpu = report.capabilities.gpu  # type: ignore[attr-defined]
    assert gpu.model == "[/]\x1b[2J\x1b]8;;http://x\x07A100" and gpu.vram_gb == 40


def test_a_hanging_gpu_tool_leaves_no_process(stand_in: Callable[[str, str], Path]) -> None:
    stand_in("nvidia-smi", "exec sleep 31337.25")
    started = time.monotonic()
    with pytest.raises(ProbeError, match="did not finish"):
        probe(timeout=1.0)
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while processes_with("31337.25") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with("31337.25") == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_an_interrupted_command_leaves_no_probe_behind(
    tmp_path: Path, stand_in: Callable[[str, str], Path], sig: signal.Signals
) -> None:
    marker = f"4242.{sig.value}"
    stand_in("nvidia-smi", f"exec sleep {marker}")
    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump({"placement": {"probeTimeout": 60, "decisionTimeout": 60}}))
    env = environment(tmp_path, PATH=os.environ["PATH"])
    process = subprocess.Popen(
        [str(SCRIPT), "discover", "--refresh", "--config", str(config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not processes_with(marker):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(sig)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in err, err
    assert process.returncode in (128 + sig.value, 130, -sig.value), (process.returncode, err)
    deadline = time.monotonic() + 5
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_with(marker) == [], "the probe's children outlived the command"


# Names the tool pattern used to allow, and worse: none may change the hardware facts.
OPTION_LIKE = st.lists(
    st.one_of(
        st.sampled_from(["--tools-only", "tools", "all", "-s", "--", "-", "-e", "--help"]),
        st.from_regex(r"\A[A-Za-z0-9._+-]{1,64}\Z", fullmatch=True),
    ),
    max_size=6,
)


def hardware(tools: list[str]) -> dict[str, str]:
    """The hardware lines of a real probe run with these tool arguments."""
    done = subprocess.run(
        sh_arguments(tools, tools_only=False),
        input=script("probe.sh"),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = dict(line.partition(" ")[::2] for line in done.stdout.splitlines())
    return {key: lines.get(key, "") for key in HARDWARE}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tools=OPTION_LIKE)
def test_no_tool_name_changes_the_hardware_facts(tools: list[str]) -> None:
    baseline = hardware([])
    assert all(baseline[key] for key in ("os", "cpu")), baseline
    found = hardware(tools)
    # disk_kb may move between two runs (other processes write); the rest may not
    assert {k: v for k, v in found.items() if k != "disk_kb"} == {
        k: v for k, v in baseline.items() if k != "disk_kb"
    }
    assert found["disk_kb"].isdigit()


def test_the_command_line_refuses_an_option_as_a_tool(tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text("task:\n  name: t\n  requirements: {tools: ['--tools-only']}\n")
    done = subprocess.run(
        [str(SCRIPT), "place", str(task)],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ran = Ran(done.returncode, done.stdout, done.stderr)
    assert_sane(ran)
    assert ran.code == 2 and "invalid tool name '--tools-only'" in ran.err


class TestTheCache:
    """The capability cache is a file others can write: it is never trusted blindly."""

    def entry(self, when: str, cpu: int = 999) -> dict[str, object]:
        return {
            "fingerprint": fingerprint(LOCAL),
            "capabilities": {"cpu": cpu, "memoryGb": 1},
            "toolsChecked": [],
            "discoveredAt": when,
            "notes": [],
        }

    def lookup(self, path: Path) -> Known:
        discovery = Discovery({TargetKind.LOCAL: LocalProbe(10)}, CapabilityCache(path))
        (known,) = asyncio.run(discovery.lookup([LOCAL], timeout=10))
        return known

    def test_an_entry_from_the_future_is_not_trusted(self, tmp_path: Path) -> None:
        path = tmp_path / "capabilities.json"
        document = {"format": 1, "targets": {"local": self.entry("2099-01-01T00:00:00+00:00")}}
        path.write_text(json.dumps(document))
        known = self.lookup(path)
        assert known.status == "fresh" and known.capabilities.cpu != 999

    @pytest.mark.parametrize("ahead", [timedelta(seconds=30), timedelta(minutes=4)])
    def test_an_entry_a_little_ahead_is_not_trusted_either(
        self, tmp_path: Path, ahead: timedelta
    ) -> None:
        path = tmp_path / "capabilities.json"
        when = (datetime.now(UTC) + ahead).isoformat()
        path.write_text(json.dumps({"format": 1, "targets": {"local": self.entry(when)}}))
        known = self.lookup(path)
        assert known.status == "fresh" and known.capabilities.cpu != 999

    def test_a_recent_entry_is_used(self, tmp_path: Path) -> None:
        """The control: an entry of a minute ago is a cache hit, cpu and all."""
        path = tmp_path / "capabilities.json"
        when = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        path.write_text(json.dumps({"format": 1, "targets": {"local": self.entry(when)}}))
        known = self.lookup(path)
        assert known.status == "cached" and known.capabilities.cpu == 999

    @pytest.mark.parametrize(
        "text",
        [
            '{"format": 1, "targets": {"local": {"fingerprint": ',
            '{"format": 99, "targets": {}}',
            '{"format": 1, "targets": {"local": {"fingerprint": "x", "capabilities": {"cpu": -1},'
            ' "toolsChecked": [], "discoveredAt": "2026-01-01T00:00:00+00:00"}}}',
            '{"format": 1, "targets": {"local": {"fingerprint": "x", "capabilities": {},'
            ' "toolsChecked": [], "discoveredAt": "2026-01-01T00:00:00"}}}',
            "[]",
            "\x00\xff",
            '{"format": 1, "targets": {}, "failures": []}',
            '{"format": 1, "targets": {}, "failures": {"local": {"fingerprint": "x",'
            ' "status": "unreachable", "cause": "down", "at": "2026-01-01T00:00:00",'
            ' "inARow": 1}}}',
            '{"format": 1, "targets": {}, "failures": {"local": {"fingerprint": "x",'
            ' "status": "unreachable", "cause": "down", "at": "2026-01-01T00:00:00+00:00",'
            ' "inARow": 0}}}',
            '{"format": 1, "targets": {}, "failures": {"local": {"fingerprint": "x",'
            ' "status": "hacked", "cause": "down", "at": "2026-01-01T00:00:00+00:00",'
            ' "inARow": 1}}}',
        ],
        ids=[
            "cut-short",
            "other-format",
            "bad-value",
            "naive-date",
            "not-an-object",
            "binary",
            "failures-not-an-object",
            "failure-naive-date",
            "failure-none-in-a-row",
            "failure-unknown-status",
        ],
    )
    def test_a_corrupt_cache_is_set_aside_with_a_stamp(self, tmp_path: Path, text: str) -> None:
        path = tmp_path / "capabilities.json"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        assert self.lookup(path).status == "fresh"
        (aside,) = tmp_path.glob("capabilities.json.unreadable-*")
        assert aside.read_text(errors="surrogateescape") == text  # kept, as it was
        assert "local" in json.loads(path.read_text())["targets"]  # and rebuilt
        assert self.lookup(path).status == "cached"  # later runs are fine

    def test_a_fifo_in_place_of_the_cache_neither_hangs_nor_is_replaced(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "capabilities.json"
        os.mkfifo(path)
        started = time.monotonic()
        assert self.lookup(path).status == "fresh"
        assert time.monotonic() - started < 10
        assert stat.S_ISFIFO(os.stat(path).st_mode)


class TestSshFilesThatAreNotFiles:
    """known_hosts and identityFile are read before connecting; a FIFO there would
    hang every probe, and a key's path is never shown."""

    def target(self, tmp_path: Path, **fields: str) -> SshTarget:
        with socket.socket() as probe_port:
            probe_port.bind(("127.0.0.1", 0))
            port = probe_port.getsockname()[1]  # closed again: nothing listens there
        return SshTarget(id="box", host="127.0.0.1", port=port, **fields)

    def test_a_fifo_as_known_hosts(self, tmp_path: Path) -> None:
        fifo = tmp_path / "known_hosts"
        os.mkfifo(fifo)
        prober = SshProbe(timeout=5, known_hosts=fifo)
        started = time.monotonic()
        with pytest.raises(ProbeError, match="connection refused"):
            asyncio.run(prober.probe(self.target(tmp_path), frozenset()))
        assert time.monotonic() - started < 5

    @pytest.mark.parametrize("kind", ["fifo", "directory", "garbage", "missing"])
    def test_an_identity_file_that_cannot_be_a_key(self, tmp_path: Path, kind: str) -> None:
        key = tmp_path / "id_ed25519_hostile"
        if kind == "fifo":
            os.mkfifo(key)
        elif kind == "directory":
            key.mkdir()
        elif kind == "garbage":
            key.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\n\x1b[2J\n")
        prober = SshProbe(timeout=5, known_hosts=tmp_path / "none")
        target = self.target(tmp_path, identity_file=str(key))
        with pytest.raises(ProbeError, match="identityFile") as caught:
            asyncio.run(prober.probe(target, frozenset()))
        assert caught.value.status == "unverified"
        assert "id_ed25519_hostile" not in caught.value.cause


@pytest.mark.parametrize(
    ("output", "cause"),
    [
        ("tool evil 1\n", "which was not asked"),
        ("nvidia-smi-begin\n0, " + "A" * 300 + ", 40960, 1\nnvidia-smi-end 0\n", "GPU name"),
    ],
    ids=["unasked-tool", "long-gpu-name"],
)
def test_answers_beyond_the_question_are_refused(output: str, cause: str) -> None:
    text = (
        f"acode-probe 1\nos Linux\narch x86_64\ncpu 4\nmem_kb 16000000\ndisk_kb 1000\n{output}end\n"
    )
    with pytest.raises(ProbeOutputError, match=cause):
        parse_probe(text, asked=frozenset(), tools_only=False)
