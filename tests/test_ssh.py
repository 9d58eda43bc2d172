"""SSH discovery against a real OpenSSH server on 127.0.0.1, faults included.

Every fault is a real socket or a real session: a closed port, a name that does
not resolve, a listener that never speaks SSH, a key the server refuses, a host
key nobody trusts (or one that changed), and sessions whose forced command
prints garbage, fails or hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from acode_placement import (
    Capabilities,
    Discovery,
    PlacementEngine,
    PlacementOptions,
    PlacementResult,
    ProbeError,
    SshProbe,
    SshTarget,
    TaskRequirements,
    load_targets,
)
from acode_placement.discovery.cache import CapabilityCache
from acode_placement.models import TargetKind
from tests import hostile
from tests.conftest import Cli
from tests.sshd import Sshd, free_port, running_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def target(server: Sshd, key: str = "good", **changes: Any) -> SshTarget:
    fields: dict[str, Any] = {
        "id": f"ssh-{key}",
        "host": "127.0.0.1",
        "port": server.port,
        "user": server.user,
        "identity_file": str(server.key(key)),
    }
    return SshTarget(**(fields | changes))


def probe(
    server: Sshd, t: SshTarget, timeout: float = 5.0, known_hosts: Path | None = None, **kw: Any
) -> Any:
    prober = SshProbe(timeout, known_hosts or server.known_hosts, **kw)
    return asyncio.run(prober.probe(t, frozenset({"sh", "no-such-tool"})))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class TestProbe:
    def test_reads_the_host_like_the_local_probe(self, sshd: Sshd) -> None:
        report = probe(sshd, target(sshd))
        caps = report.capabilities
        assert caps.cpu == len(os.sched_getaffinity(0)) or caps.cpu == os.cpu_count()
        assert caps.os == "linux" and caps.arch in ("x64", "arm64")
        assert caps.memory_gb and caps.memory_gb > 0
        assert caps.tools == ("sh",)
        assert report.tools_checked == {"sh", "no-such-tool"}

    def test_facts_and_tool_versions_over_ssh(self, sshd: Sshd) -> None:
        """The settings' facts and a tool's version, read on the far side like here."""
        from acode_placement.models import FactSpec

        facts = {
            "shellSays": FactSpec(command=["echo", "a;b $(id) `id`", "it's"], pattern=".*"),
            "absent": FactSpec(command=["no-such-command"], pattern="([0-9]+)"),
        }
        prober = SshProbe(5, sshd.known_hosts, facts=facts)
        asked = frozenset({"sh", "python3", "version:python3"})
        report = asyncio.run(prober.probe(target(sshd), asked))
        custom = report.capabilities.custom
        assert custom["shellSays"] == "a;b $(id) `id` it's"  # words stay words
        assert "absent" not in custom
        assert any(note.startswith("fact absent unknown:") for note in report.notes)
        # the server's python3 (whichever its PATH finds), as `python3 --version` says
        assert re.fullmatch(r"3\.\d+\.\d+", report.capabilities.tool_versions["python3"])

    def test_tools_only_probe(self, sshd: Sshd) -> None:
        prober = SshProbe(5, sshd.known_hosts)
        report = asyncio.run(prober.probe(target(sshd), frozenset({"sh"}), tools_only=True))
        assert not report.hardware and report.capabilities.tools == ("sh",)


class TestFaults:
    def expect(self, status: str, message: str, *args: Any, **kw: Any) -> float:
        started = time.perf_counter()
        with pytest.raises(ProbeError, match=message) as caught:
            probe(*args, **kw)
        assert caught.value.status == status
        return time.perf_counter() - started

    def test_refused_connection(self, sshd: Sshd) -> None:
        closed = free_port()
        self.expect("unreachable", "connection refused", sshd, target(sshd, port=closed))

    def test_a_name_that_does_not_resolve(self, sshd: Sshd) -> None:
        elapsed = self.expect(
            "unreachable",
            r"no-such-host\.invalid:\d+: ",
            sshd,
            target(sshd, host="no-such-host.invalid"),
        )
        assert elapsed < 10

    def test_a_listener_that_never_speaks_ssh(self, sshd: Sshd) -> None:
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            port = silent.getsockname()[1]
            elapsed = self.expect(
                "unreachable",
                r"no SSH answer within 0\.5 s",
                sshd,
                target(sshd, port=port),
                timeout=0.5,
            )
        assert 0.4 < elapsed < 5

    def test_a_key_the_server_refuses(self, sshd: Sshd) -> None:
        self.expect("unverified", "login as .* refused", sshd, target(sshd, "stranger"))

    def test_a_missing_identity_file(self, sshd: Sshd, tmp_path: Path) -> None:
        missing = tmp_path / "id_nothing"
        t = target(sshd, identity_file=str(missing))
        with pytest.raises(ProbeError, match="identityFile does not exist") as caught:
            probe(sshd, t)
        assert caught.value.status == "unverified"
        assert "id_nothing" not in caught.value.cause  # a key's path is never shown

    def test_an_unknown_host_key_is_refused_by_default(self, sshd: Sshd, tmp_path: Path) -> None:
        empty = tmp_path / "known_hosts"
        self.expect(
            "unverified",
            "host key not trusted .*acceptNewHostKeys",
            sshd,
            target(sshd),
            known_hosts=empty,
        )
        assert not empty.exists()

    def test_accept_new_trusts_and_records_a_first_seen_host(
        self, sshd: Sshd, tmp_path: Path
    ) -> None:
        known = tmp_path / "ssh" / "known_hosts"
        report = probe(sshd, target(sshd), known_hosts=known, accept_new_host_keys=True)
        assert report.capabilities.tools == ("sh",)
        assert known.read_text().strip() == sshd.host_key_line
        # Now known: the strict default accepts it too.
        assert probe(sshd, target(sshd), known_hosts=known).capabilities.os == "linux"

    def test_a_changed_host_key_is_refused_even_with_accept_new(
        self, sshd: Sshd, tmp_path: Path
    ) -> None:
        other = (sshd.root / "client_stranger.pub").read_text().split()
        known = tmp_path / "known_hosts"
        known.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
        self.expect(
            "unverified",
            "host key not trusted",
            sshd,
            target(sshd),
            known_hosts=known,
            accept_new_host_keys=True,
        )
        assert len(known.read_text().splitlines()) == 1

    def test_a_session_that_prints_garbage(self, sshd: Sshd) -> None:
        self.expect("unverified", "not a probe's output", sshd, target(sshd, "garbage"))

    def test_a_probe_that_exits_non_zero(self, sshd: Sshd) -> None:
        self.expect(
            "unverified", "exited with status 3: probe exploded", sshd, target(sshd, "failing")
        )

    def test_a_probe_that_hangs(self, sshd: Sshd) -> None:
        elapsed = self.expect(
            "unverified",
            r"the probe did not finish within 0\.7 s",
            sshd,
            target(sshd, "hanging"),
            timeout=0.7,
        )
        assert elapsed < 5

    def test_no_connection_is_left_behind(self, sshd: Sshd) -> None:
        before = open_fds()
        for key in ("good", "garbage", "failing", "stranger", "hanging"):
            with contextlib.suppress(ProbeError):
                probe(sshd, target(sshd, key), timeout=1.0)
        assert open_fds() == before
        # The server's per-connection processes end once the clients are gone.
        deadline = time.monotonic() + 25
        while sshd.sessions() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sshd.sessions() == []


class TestEngineOverSsh:
    def test_a_fleet_of_real_and_broken_hosts(self, sshd: Sshd) -> None:
        declared = Capabilities(cpu=1, os="linux", tools=("sh",))
        fleet = [
            target(sshd, id="up"),
            target(sshd, id="down", port=free_port(), capabilities=declared),
            target(sshd, "garbage", id="liar"),  # nothing declared: excluded
        ]
        prober = SshProbe(3, sshd.known_hosts)
        engine = PlacementEngine(discovery=Discovery({TargetKind.SSH: prober}, CapabilityCache()))
        task = TaskRequirements(cpu=1, tools=["sh"])

        async def twice() -> tuple[PlacementResult, PlacementResult]:
            first = await engine.place(task, fleet, PlacementOptions())
            await engine.settle(30)  # the probes the first decision did not wait for
            return first, await engine.place(task, fleet, PlacementOptions())

        first, result = asyncio.run(twice())
        # The first decision keeps its 0.1 s deadline: "down" declares what the task
        # needs, so it is used at once; the others are waited for that long at most.
        assert first.decision_duration < 2
        down = next(ts for ts in first.all_scores if ts.id == "down")
        assert down.status == "declared" and down.eligible
        assert down.cause == "not probed yet; probing in the background"
        by_id = {ts.id: ts for ts in result.all_scores}
        assert by_id["up"].status == "cached" and by_id["up"].eligible
        assert by_id["down"].status == "unreachable" and by_id["down"].eligible
        assert by_id["liar"].status == "unverified" and not by_id["liar"].eligible
        assert "not a probe's output" in (by_id["liar"].cause or "")
        assert result.selected is not None and result.selected.id == "up"

    def test_twenty_hosts_at_once(self, sshd: Sshd) -> None:
        fleet = [target(sshd, id=f"h{i}") for i in range(20)]
        prober = SshProbe(20, sshd.known_hosts)
        discovery = Discovery({TargetKind.SSH: prober}, CapabilityCache(), concurrency=8)
        started = time.perf_counter()
        known = asyncio.run(discovery.lookup(fleet))
        elapsed = time.perf_counter() - started
        assert [k.status for k in known] == ["fresh"] * 20
        assert elapsed < 30  # loose: the benchmark prints the real figure


class TestDiscoverCommand:
    def fleet(self, sshd: Sshd, tmp_path: Path) -> tuple[Path, Path]:
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            yaml.safe_dump(
                {
                    "targets": [
                        {
                            "id": "box",
                            "type": "ssh",
                            "host": "127.0.0.1",
                            "port": sshd.port,
                            "user": sshd.user,
                            "identityFile": str(sshd.key("good")),
                            "capabilities": {"cpu": 999, "tools": ["sh", "no-such-tool"]},
                        },
                        {"id": "gone", "type": "ssh", "host": "127.0.0.1", "port": free_port()},
                    ]
                }
            )
        )
        config = tmp_path / "placement.yaml"
        config.write_text(
            yaml.safe_dump({"placement": {"knownHosts": str(sshd.known_hosts), "probeTimeout": 3}})
        )
        return targets, config

    def test_discover_json_reports_sources_contradictions_and_status(
        self, sshd: Sshd, tmp_path: Path, cli: Cli
    ) -> None:
        targets, config = self.fleet(sshd, tmp_path)
        code, out = cli.json("discover", "--targets", targets, "--config", config)
        assert code == 0
        box, gone = out["targets"]
        assert box["status"] == "fresh" and box["sources"]["cpu"] == "both"
        assert box["sources"]["os"] == "discovered"
        assert box["capabilities"]["cpu"] < 999
        assert (
            f"cpu declared 999, discovered {box['capabilities']['cpu']:g}" in box["contradictions"]
        )
        assert "tools declared but not found: no-such-tool" in box["contradictions"]
        assert gone["status"] == "unreachable" and "connection refused" in gone["cause"]
        assert gone["capabilities"] == {"custom": {}, "tools": [], "toolVersions": {}, "gpus": []}
        # The second run is served from the cache; --refresh probes again.
        _, again = cli.json("discover", "box", "--targets", targets, "--config", config)
        assert [t["status"] for t in again["targets"]] == ["cached"]
        _, fresh = cli.json(
            "discover", "box", "--refresh", "--targets", targets, "--config", config
        )
        assert [t["status"] for t in fresh["targets"]] == ["fresh"]
        assert fresh["cache"]["misses"] == 1

    def test_discover_table_and_unknown_id(self, sshd: Sshd, tmp_path: Path, cli: Cli) -> None:
        targets, config = self.fleet(sshd, tmp_path)
        code, out, _ = cli("discover", "--targets", targets, "--config", config)
        assert code == 0
        assert "box: cpu declared 999" in out
        assert "gone" in out and "unreachable" in out
        code, _, err = cli("discover", "nope", "--targets", targets)
        assert code == 2
        assert "unknown target id 'nope'; available: box, gone" in err


class TestInit:
    """`init --ssh` against the real server: a first-seen host key is refused unless
    --accept-new-host-keys; no identityFile means the user's own ~/.ssh keys."""

    def test_init_probes_an_ssh_host_and_accepts_its_new_key(
        self, sshd: Sshd, tmp_path: Path
    ) -> None:
        ssh_dir = tmp_path / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "id_ed25519").write_bytes(sshd.key("good").read_bytes())
        (ssh_dir / "id_ed25519").chmod(0o600)
        known = tmp_path / "known_hosts"  # empty: the host has never been seen
        config = tmp_path / "placement.yaml"
        config.write_text(yaml.safe_dump({"placement": {"knownHosts": str(known)}}))
        written = tmp_path / "targets.yaml"
        spec = f"{sshd.user}@127.0.0.1:{sshd.port}"
        argv = ("init", "--targets", written, "--config", config, "--ssh", spec)

        refused = hostile.run(tmp_path, *argv)
        assert refused.code == 0, refused.err
        assert "host key not trusted" in refused.out and not known.exists()
        (_, host) = load_targets(written)
        assert isinstance(host, SshTarget) and host.capabilities is None
        assert "# unverified at init (127.0.0.1:" in written.read_text()

        accepted = hostile.run(tmp_path, *argv, "--accept-new-host-keys", "--force", "--json")
        assert accepted.code == 0, accepted.err
        rows = json.loads(accepted.out)["targets"]
        assert [(r["id"], r["status"]) for r in rows] == [
            ("local", "fresh"),
            ("127-0-0-1", "fresh"),
        ]
        (_, host) = load_targets(written)
        assert isinstance(host, SshTarget)
        assert (host.host, host.port, host.user) == ("127.0.0.1", sshd.port, sshd.user)
        assert host.identity_file is None  # the user's own keys, as ssh would use
        assert host.capabilities is not None and host.capabilities.cpu == os.cpu_count()
        assert sshd.host_key_line.split()[1:] == known.read_text().split()[1:3]

        task = tmp_path / "task.yaml"
        task.write_text(yaml.safe_dump({"task": {"name": "t", "requirements": {"cpu": 1}}}))
        placed = hostile.run(tmp_path, "place", task, "--targets", written, "--config", config)
        assert placed.code == 0, placed.err
