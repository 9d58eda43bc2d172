"""Discovery: cache and time-to-live, tools on demand, change events, deadlines,
degradation, persistence, and the local probe against the machine's own tools."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

from acode_placement import (
    Capabilities,
    CapabilitiesChanged,
    CapabilityCache,
    Discovery,
    DiscoveryStatus,
    GpuInfo,
    LocalProbe,
    LocalTarget,
    PlacementEngine,
    PlacementOptions,
    PlacementSettings,
    ProbeError,
    ProbeReport,
    SshTarget,
    TaskRequirements,
    explain,
)
from acode_placement.discovery.cache import fingerprint
from acode_placement.discovery.service import COMMON_TOOLS
from acode_placement.models import AnyTarget, Known, TargetKind

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

BOX = SshTarget(id="box", host="box.test", capabilities=Capabilities(cpu=4, os="linux"))
BARE = SshTarget(id="bare", host="bare.test")  # nothing declared


@dataclass
class FakeProber:
    """Answers like a machine would; counts and records every probe."""

    cpu: int = 8
    tools: frozenset[str] = frozenset({"git", "docker"})
    delay: float = 0.0
    fail: ProbeError | None = None
    calls: list[tuple[str, frozenset[str], bool]] = field(default_factory=list)
    running: int = 0
    most_running: int = 0
    cancelled: int = 0

    async def probe(
        self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool = False
    ) -> ProbeReport:
        self.calls.append((target.id, tools, tools_only))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1
        if self.fail is not None:
            raise self.fail
        found = tuple(sorted(tools & self.tools))
        now = datetime.now(UTC)
        if tools_only:
            return ProbeReport(Capabilities(tools=found, discovered_at=now), tools, False)
        caps = Capabilities(cpu=self.cpu, memory_gb=32, os="linux", tools=found, discovered_at=now)
        return ProbeReport(caps, tools, True)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def discovery(
    prober: FakeProber, clock: Clock | None = None, path: Path | None = None, **options: object
) -> Discovery:
    return Discovery(
        {TargetKind.SSH: prober, TargetKind.LOCAL: prober},
        CapabilityCache(path),
        clock=clock or Clock(),
        **options,  # type: ignore[arg-type]
    )


def lookup(d: Discovery, targets: list[AnyTarget], tools: set[str] | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return asyncio.run(d.lookup(targets, frozenset(tools or ()), **kw))  # type: ignore[arg-type]


class TestCache:
    def test_first_lookup_probes_then_the_cache_answers(self) -> None:
        prober = FakeProber()
        d = discovery(prober)
        (first,) = lookup(d, [BOX], {"git"})
        (second,) = lookup(d, [BOX], {"git"})
        assert (first.status, second.status) == ("fresh", "cached")
        assert first.capabilities.cpu == second.capabilities.cpu == 8
        assert len(prober.calls) == 1
        # A full probe also asks about the common tools, so later tasks hit the cache.
        assert prober.calls[0][1] == COMMON_TOOLS | {"git"}
        assert (d.stats.hits, d.stats.misses) == (1, 1)

    def test_discovered_values_override_declared_and_declared_fill_the_rest(self) -> None:
        target = SshTarget(
            id="box",
            host="box.test",
            capabilities=Capabilities(cpu=4, network=True, tools=("make",)),
        )
        (known,) = lookup(discovery(FakeProber()), [target], {"git"})
        caps = known.capabilities
        assert (caps.cpu, caps.network, caps.os) == (8, True, "linux")
        assert caps.tools == ("docker", "git", "make")
        assert known.discovered is not None and known.discovered.network is None

    def test_entries_expire_after_the_ttl(self) -> None:
        prober, clock = FakeProber(), Clock()
        d = discovery(prober, clock, ttl=timedelta(minutes=5))
        lookup(d, [BOX])
        clock.advance(minutes=4, seconds=59)
        assert lookup(d, [BOX])[0].status == "cached"
        clock.advance(seconds=1)
        assert lookup(d, [BOX])[0].status == "fresh"
        assert len(prober.calls) == 2

    def test_refresh_ignores_the_cache(self) -> None:
        prober = FakeProber()
        d = discovery(prober)
        lookup(d, [BOX])
        assert lookup(d, [BOX], refresh=True)[0].status == "fresh"
        assert len(prober.calls) == 2

    def test_a_ttl_of_zero_probes_every_time(self) -> None:
        prober = FakeProber()
        d = discovery(prober, ttl=timedelta(0))
        for _ in range(3):
            lookup(d, [BOX])
        assert len(prober.calls) == 3

    def test_unknown_tools_are_probed_alone_batched_per_target(self) -> None:
        prober = FakeProber(tools=frozenset({"git", "bazel"}))
        d = discovery(prober)
        lookup(d, [BOX, BARE], {"git"})
        prober.calls.clear()
        known = lookup(d, [BOX, BARE], {"git", "bazel", "zig"})
        assert sorted(prober.calls) == [
            ("bare", frozenset({"bazel", "zig"}), True),
            ("box", frozenset({"bazel", "zig"}), True),
        ]
        assert [k.capabilities.tools for k in known] == [("bazel", "git")] * 2
        # The hardware stays as it was; now every tool is known.
        prober.calls.clear()
        assert lookup(d, [BOX], {"bazel", "zig"})[0].status == "cached"
        assert prober.calls == []

    def test_a_tool_that_disappears_is_dropped_on_the_next_full_probe(self) -> None:
        prober, clock = FakeProber(tools=frozenset({"git", "docker"})), Clock()
        d = discovery(prober, clock)
        lookup(d, [BOX], {"docker"})
        prober.tools = frozenset({"git"})
        clock.advance(minutes=10)
        (known,) = lookup(d, [BOX])
        assert "docker" not in known.capabilities.tools
        # docker was asked about again because it had been asked about before
        assert "docker" in prober.calls[-1][1]

    def test_a_warm_placement_loop_hits_the_cache(self) -> None:
        prober = FakeProber()
        d = discovery(prober)
        fleet: list[AnyTarget] = [
            SshTarget(id=f"h{i}", host=f"h{i}.test", capabilities=Capabilities(cpu=4))
            for i in range(10)
        ]
        engine = PlacementEngine(discovery=d)
        tasks = [TaskRequirements(cpu=2, tools=["git"]), TaskRequirements(tools=["docker"])]

        async def loop() -> None:
            for n in range(1000):
                await engine.place(tasks[n % 2], fleet)

        asyncio.run(loop())
        assert d.stats.hit_rate > 0.99
        assert len(prober.calls) == 10

    def test_a_changed_host_invalidates_the_entry(self) -> None:
        prober = FakeProber()
        d = discovery(prober)
        lookup(d, [BOX])
        moved = BOX.model_copy(update={"host": "elsewhere.test"})
        assert fingerprint(moved) != fingerprint(BOX)
        assert lookup(d, [moved])[0].status == "fresh"


class TestPersistence:
    def test_entries_survive_the_process_and_merge_with_other_writers(self, tmp_path: Path) -> None:
        path = tmp_path / "data" / "capabilities.json"
        clock = Clock()
        lookup(discovery(FakeProber(cpu=8), clock, path), [BOX])
        lookup(discovery(FakeProber(cpu=16), clock, path), [BARE])
        prober = FakeProber()
        later = discovery(prober, clock, path)
        known = lookup(later, [BOX, BARE])
        assert [k.status for k in known] == ["cached", "cached"]
        assert [k.capabilities.cpu for k in known] == [8, 16]
        assert prober.calls == []
        document = json.loads(path.read_text())
        assert document["format"] == 1 and set(document["targets"]) == {"box", "bare"}

    def test_a_corrupt_file_is_set_aside_and_rebuilt(self, tmp_path: Path) -> None:
        path = tmp_path / "capabilities.json"
        path.write_text('{"format": 1, "targets": {"box": {"fingerprint": ')
        prober = FakeProber()
        (known,) = lookup(discovery(prober, path=path), [BOX])
        assert known.status == "fresh"
        (aside,) = tmp_path.glob("capabilities.json.unreadable-*")  # stamped with the time
        assert aside.read_text().startswith('{"format": 1, "targets"')
        assert "box" in json.loads(path.read_text())["targets"]

    def test_an_unwritable_place_only_loses_the_cache(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("")
        (known,) = lookup(discovery(FakeProber(), path=blocker / "capabilities.json"), [BOX])
        assert known.status == "fresh"


class TestChanges:
    def test_a_change_is_published_with_the_difference(self) -> None:
        prober, clock = FakeProber(cpu=8), Clock()
        d = discovery(prober, clock)
        events: list[CapabilitiesChanged] = []
        d.subscribe(events.append)
        lookup(d, [BOX], {"docker"})
        assert events == []  # a first discovery is not a change
        prober.cpu, prober.tools = 4, frozenset({"git"})
        clock.advance(minutes=6)
        lookup(d, [BOX])
        (event,) = events
        assert event.target_id == "box" and event.name == "CapabilitiesChanged"
        assert [(c.field, c.before, c.after) for c in event.changes] == [
            ("cpu", 8, 4),
            ("tool docker", True, False),
        ]

    def test_the_same_answer_publishes_nothing(self) -> None:
        prober, clock = FakeProber(), Clock()
        d = discovery(prober, clock)
        events: list[CapabilitiesChanged] = []
        d.subscribe(events.append)
        for _ in range(3):
            lookup(d, [BOX])
            clock.advance(minutes=6)
        assert events == []

    def test_engine_subscribers_get_discovery_events_and_a_failing_one_breaks_nothing(
        self,
    ) -> None:
        prober, clock = FakeProber(cpu=8), Clock()
        engine = PlacementEngine(discovery=discovery(prober, clock))
        seen: list[str] = []
        engine.subscribe(lambda e: seen.append(e.name))

        def broken(_: object) -> None:
            raise RuntimeError("subscriber bug")

        engine.subscribe(broken)

        async def place_and_settle() -> bool:
            # the probe runs in the background (declared, then stale values used at
            # once); its change is published when it lands
            result = await engine.place(TaskRequirements(), [BOX])
            await engine.settle(5)
            return result.success

        assert asyncio.run(place_and_settle())
        prober.cpu = 2
        clock.advance(minutes=6)
        assert asyncio.run(place_and_settle())
        assert seen.count("CapabilitiesChanged") == 1


class TestDegradation:
    def test_failure_with_nothing_known_uses_declared_and_says_why(self) -> None:
        prober = FakeProber(fail=ProbeError(DiscoveryStatus.UNREACHABLE, "box: connection refused"))
        (known,) = lookup(discovery(prober), [BOX])
        assert (known.status, known.cause, known.known) == (
            "unreachable",
            "box: connection refused",
            True,
        )
        assert known.capabilities.cpu == 4 and known.stale

    def test_failure_after_a_success_uses_the_last_known_values(self) -> None:
        prober, clock = FakeProber(cpu=8), Clock()
        d = discovery(prober, clock)
        lookup(d, [BOX])
        clock.advance(minutes=10)
        prober.fail = ProbeError(DiscoveryStatus.UNVERIFIED, "box: host key not trusted")
        (known,) = lookup(d, [BOX])
        assert known.status == "stale" and known.capabilities.cpu == 8
        assert known.cause == "unverified: box: host key not trusted"

    def test_nothing_known_excludes_the_target_with_the_cause(self) -> None:
        prober = FakeProber(fail=ProbeError(DiscoveryStatus.UNREACHABLE, "bare: no route"))
        engine = PlacementEngine(discovery=discovery(prober))
        result = asyncio.run(engine.place(TaskRequirements(), [BARE]))
        assert not result.success
        (score,) = result.all_scores
        assert not score.eligible and score.status == "unreachable"
        assert result.failure_message is not None
        assert "1 capabilities unknown (discovery failed)" in result.failure_message

    def test_a_recent_failure_is_not_probed_again_on_every_decision(self) -> None:
        prober, clock = FakeProber(fail=ProbeError(DiscoveryStatus.UNREACHABLE, "down")), Clock()
        d = discovery(prober, clock, retry_after=timedelta(seconds=30))
        for _ in range(5):
            assert lookup(d, [BOX])[0].status == "unreachable"
        assert len(prober.calls) == 1
        clock.advance(seconds=30)
        lookup(d, [BOX])
        assert len(prober.calls) == 2

    def test_the_back_off_holds_across_processes_through_the_cache_file(
        self, tmp_path: Path
    ) -> None:
        """Each command run is a new process with a new Discovery: the failure kept in
        the cache file spares the next runs the wait, doubles with each failure in a
        row, and ends with the next good discovery."""
        path, clock = tmp_path / "capabilities.json", Clock()
        down = ProbeError(DiscoveryStatus.UNREACHABLE, "connection timed out")
        probes: list[FakeProber] = []

        def run(**prober: Any) -> Known:
            probes.append(FakeProber(**prober))
            d = discovery(probes[-1], clock, path, retry_after=timedelta(seconds=30))
            return cast(Known, lookup(d, [BOX])[0])

        first = run(fail=down)
        assert (first.status, first.cause) == ("unreachable", "connection timed out")
        for _ in range(2):  # the next runs answer from the file, without a probe
            again = run(fail=down)
            assert (again.status, again.cause) == ("unreachable", "connection timed out")
            assert probes[-1].calls == []
        stored = json.loads(path.read_text())["failures"]["box"]
        assert (stored["status"], stored["inARow"]) == ("unreachable", 1)
        clock.advance(seconds=30)
        run(fail=down)  # probed again: the second failure in a row
        assert len(probes[-1].calls) == 1
        clock.advance(seconds=31)
        assert run(fail=down).status == "unreachable" and probes[-1].calls == []  # 60 s now
        clock.advance(seconds=30)
        assert run().status == "fresh"  # it answers again
        assert "box" not in json.loads(path.read_text())["failures"]
        assert run(fail=down).status == "cached" and probes[-1].calls == []

    def test_a_failure_dated_in_the_future_holds_nothing_back(self, tmp_path: Path) -> None:
        """A failure from a clock ahead of ours is not trusted: the target is probed."""
        path = tmp_path / "capabilities.json"
        failure = {
            "fingerprint": fingerprint(BOX),
            "status": "unreachable",
            "cause": "down",
            "at": "2099-01-01T00:00:00+00:00",
            "inARow": 5,
        }
        path.write_text(json.dumps({"format": 1, "targets": {}, "failures": {"box": failure}}))
        prober = FakeProber()
        (known,) = lookup(discovery(prober, Clock(), path), [BOX])
        assert known.status == "fresh" and len(prober.calls) == 1

    def test_an_unexpected_exception_in_a_prober_degrades_too(self) -> None:
        class Broken(FakeProber):
            async def probe(self, *a: object, **k: object) -> ProbeReport:
                raise RuntimeError("bug in a plug-in prober")

        (known,) = lookup(discovery(Broken()), [BOX])
        assert known.status == "unverified" and "bug in a plug-in prober" in (known.cause or "")


class TestDeadline:
    def place(self, prober: FakeProber, timeout: float = 0.05, d: Discovery | None = None):  # type: ignore[no-untyped-def]
        engine = PlacementEngine(discovery=d or discovery(prober))
        options = PlacementOptions(decision_timeout=timeout)
        return asyncio.run(engine.place(TaskRequirements(cpu=2), [BOX], options))

    def test_a_target_never_probed_is_used_as_declared_at_once(self) -> None:
        prober = FakeProber(delay=10)
        result = self.place(prober, timeout=5)
        assert result.success and not result.selected.stale
        assert result.selected.status == "declared"
        assert result.selected.cause == "not probed yet; probing in the background"
        assert result.selected.capabilities.cpu == 4
        assert result.decision_duration < 1  # the 5 s deadline is not waited for
        assert "box declared (not probed yet; probing in the background)" in explain.why(result)
        # asyncio.run ends the loop: the background probe is cancelled, not leaked.
        assert prober.cancelled == 1 and prober.running == 0

    def test_a_late_probe_of_a_target_nothing_is_known_of_keeps_the_deadline(self) -> None:
        prober = FakeProber(delay=10)
        engine = PlacementEngine(discovery=discovery(prober))
        options = PlacementOptions(decision_timeout=0.05)
        result = asyncio.run(engine.place(TaskRequirements(cpu=2), [BARE], options))
        assert not result.success and result.decision_duration < 2
        (only,) = result.all_scores
        assert only.status == "unverified"
        assert only.cause == "no answer within the decision timeout (0.05 s)"
        assert prober.cancelled == 1 and prober.running == 0

    def test_the_default_deadline_is_a_tenth_of_a_second(self) -> None:
        assert PlacementOptions().decision_timeout == 0.1
        assert PlacementSettings().decision_timeout == 0.1

    def test_a_late_probe_still_fills_the_cache_while_the_loop_lives(self) -> None:
        prober = FakeProber(delay=0.2)
        d = discovery(prober)
        engine = PlacementEngine(discovery=d)
        options = PlacementOptions(decision_timeout=0.01)

        async def two_decisions() -> tuple[str, str]:
            first = await engine.place(TaskRequirements(), [BOX], options)
            await asyncio.sleep(0.4)
            second = await engine.place(TaskRequirements(), [BOX], options)
            assert first.selected and second.selected
            return first.selected.status, second.selected.status

        assert asyncio.run(two_decisions()) == ("declared", "cached")
        assert len(prober.calls) == 1

    def test_an_expired_entry_is_used_at_once_and_refreshed_in_the_background(self) -> None:
        clock = Clock()
        prober = FakeProber(cpu=8)
        d = discovery(prober, clock)
        engine = PlacementEngine(discovery=d)
        options = PlacementOptions(decision_timeout=5)

        async def run() -> list[Any]:
            first = await engine.place(TaskRequirements(), [BOX], options)  # declared
            await engine.settle(5)
            clock.advance(minutes=7)
            prober.cpu, prober.delay = 16, 10.0  # the machine grew; its probe is slow
            second = await engine.place(TaskRequirements(), [BOX], options)
            prober.delay = 0.0
            return [first, second]

        first, second = asyncio.run(run())
        assert first.selected.status == "declared"
        assert second.selected.status == "stale" and second.decision_duration < 1
        assert second.selected.cause == "last probed 7 min ago; refreshing in the background"
        assert second.selected.capabilities.cpu == 8  # the last known, not the declared 4
        why = explain.why(second)
        assert "box stale (last probed 7 min ago; refreshing in the background)" in why
        assert len(prober.calls) == 2  # the refresh was started, not skipped

        # With a quick probe, the refresh lands and the next decision sees it.
        async def refreshed() -> tuple[str, str, float | None]:
            clock.advance(minutes=7)
            await engine.place(TaskRequirements(), [BOX], options)
            await engine.settle(5)
            third = await engine.place(TaskRequirements(), [BOX], options)
            assert third.selected
            chosen = third.selected
            return chosen.status, chosen.cause or "", chosen.capabilities.cpu

        assert asyncio.run(refreshed()) == ("cached", "", 16)

    def test_an_expired_entry_that_never_asked_about_a_tool_waits_for_it(self) -> None:
        clock = Clock()
        prober = FakeProber()
        d = discovery(prober, clock)
        lookup(d, [BOX])
        clock.advance(minutes=7)
        (known,) = asyncio.run(d.lookup([BOX], frozenset({"zig"}), timeout=5))
        assert known.status == "fresh"  # waited: nothing known could answer for zig

    def test_a_probe_that_missed_a_deadline_is_not_waited_for_again(self) -> None:
        prober = FakeProber(delay=1.0)
        d = discovery(prober)

        async def run() -> list[tuple[Known, float]]:
            answers = []
            for _ in range(3):
                started = asyncio.get_running_loop().time()
                (known,) = await d.lookup([BARE], timeout=0.2)
                answers.append((known, asyncio.get_running_loop().time() - started))
            await d.settle(5)
            (done,) = await d.lookup([BARE], timeout=0.2)
            answers.append((done, 0.0))
            return answers

        (first, waited), *again, (done, _) = asyncio.run(run())
        assert first.cause == "no answer within the decision timeout (0.2 s)"
        assert waited >= 0.15
        for known, took in again:
            assert known.status == "unverified" and not known.known
            assert known.cause == "still probing after missing an earlier decision's deadline"
            assert took < 0.1
        assert len(prober.calls) == 1
        assert done.status == "cached" and done.capabilities.cpu == 8

    def test_verified_only_waits_for_the_probe_of_a_declared_target(self) -> None:
        prober = FakeProber(delay=0.05)
        engine = PlacementEngine(discovery=discovery(prober))
        options = PlacementOptions(decision_timeout=5, require_verified=True)
        result = asyncio.run(engine.place(TaskRequirements(cpu=2), [BOX], options))
        assert result.success and result.selected.status == "fresh"

    def test_concurrent_decisions_share_one_probe_per_target(self) -> None:
        prober = FakeProber(delay=0.05)
        engine = PlacementEngine(discovery=discovery(prober))

        async def many() -> None:
            await asyncio.gather(*(engine.place(TaskRequirements(), [BOX]) for _ in range(20)))

        asyncio.run(many())
        assert len(prober.calls) == 1

    def test_probes_run_concurrently_within_the_bound(self) -> None:
        prober = FakeProber(delay=0.05)
        d = discovery(prober, concurrency=8)
        fleet: list[AnyTarget] = [SshTarget(id=f"h{i}", host=f"h{i}.test") for i in range(100)]
        known = lookup(d, fleet)
        assert all(k.status == "fresh" for k in known)
        assert prober.most_running == 8
        # 100 probes of 50 ms, 8 at a time: about 0.65 s, far from 5 s one by one.

    def test_discovery_off_uses_declared_only(self) -> None:
        prober = FakeProber()
        engine = PlacementEngine(discovery=discovery(prober))
        options = PlacementOptions(discovery_enabled=False)
        result = asyncio.run(engine.place(TaskRequirements(), [BOX], options))
        assert result.selected.status == "declared" and prober.calls == []


class TestLocalProbe:
    @linux_only
    def test_agrees_with_nproc_meminfo_and_df(self, tmp_path: Path) -> None:
        report = asyncio.run(
            LocalProbe(10, workdir=tmp_path).probe(LocalTarget(id="here"), frozenset({"sh"}))
        )
        caps = report.capabilities
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
        assert caps.cpu == int(subprocess.check_output(["nproc"], text=True, env=env))
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
        assert caps.memory_gb == pytest.approx(total_kib / 1024**2, abs=0.1)
        df = subprocess.check_output(["df", "-Pk", str(tmp_path)], text=True).splitlines()[1]
        free_gib = int(df.split()[3]) / 1024**2
        assert caps.disk_gb == pytest.approx(free_gib, abs=max(1.0, free_gib * 0.02))
        assert (caps.os, caps.tools) == ("linux", ("sh",))
        assert caps.arch in ("x64", "arm64")
        assert caps.discovered_at is not None

    def test_a_hanging_probe_is_killed_with_its_children(self, tmp_path: Path) -> None:
        pids = tmp_path / "pids"
        hang = f"sleep 30 & echo $! > {pids}; echo $$ >> {pids}; wait\n"
        probe = LocalProbe(0.3, probe_script=hang)
        with pytest.raises(ProbeError, match=r"did not finish within 0\.3 s") as caught:
            asyncio.run(probe.probe(LocalTarget(id="here"), frozenset()))
        assert caught.value.status == "unverified"
        for pid in map(int, pids.read_text().split()):
            assert not _alive(pid), f"process {pid} outlived the probe"

    def test_a_cancelled_probe_leaves_no_process(self, tmp_path: Path) -> None:
        pids = tmp_path / "pids"
        hang = f"echo $$ > {pids}; sleep 30\n"
        probe = LocalProbe(30, probe_script=hang)

        async def cancel() -> None:
            task = asyncio.ensure_future(probe.probe(LocalTarget(id="here"), frozenset()))
            while not pids.exists() or not pids.read_text().strip():
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel())
        assert not _alive(int(pids.read_text()))

    def test_a_one_shot_loop_may_end_while_a_background_probe_starts(self) -> None:
        """`asyncio.run(engine.place(...))` answers with declared values and ends its
        loop at once, while the local probe it started is still being spawned. CPython
        3.11 hangs for ever in that loop's shutdown when the probe is an asyncio
        subprocess (python/cpython#103847); the probe must not be one."""
        code = (
            "import asyncio\n"
            "from acode_placement import *\n"
            "from acode_placement.models import TargetKind\n"
            "engine = PlacementEngine(discovery=Discovery({TargetKind.LOCAL: LocalProbe(10)}))\n"
            "box = LocalTarget(id='box', capabilities=Capabilities(cpu=2))\n"
            "for _ in range(25):\n"
            "    result = asyncio.run(engine.place(TaskRequirements(cpu=1), [box]))\n"
            "    assert result.selected.status == 'declared', result.selected\n"
            "print('done')\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
        )
        assert done.stdout == "done\n", done.stderr[-2000:]

    @pytest.mark.parametrize(
        ("text", "status", "message"),
        [
            ("echo hello\n", "unverified", "not a probe's output"),
            ("echo 'disk on fire' >&2; exit 4\n", "unverified", "status 4: disk on fire"),
        ],
    )
    def test_bad_probes_fail_with_the_cause(self, text: str, status: str, message: str) -> None:
        with pytest.raises(ProbeError, match=message) as caught:
            asyncio.run(LocalProbe(5, probe_script=text).probe(LocalTarget(id="x"), frozenset()))
        assert caught.value.status == status

    def test_the_default_engine_discovers_this_machine(self) -> None:
        result = asyncio.run(
            PlacementEngine.default().place(
                TaskRequirements(cpu=1, tools=["sh"]), [LocalTarget(id="here")]
            )
        )
        assert result.success, result.failure_message
        assert result.selected.status == "fresh"
        assert "sh" in result.selected.capabilities.tools

    def test_gpu_info_of_a_declared_target_is_kept_when_discovery_finds_none(self) -> None:
        # A probe that finds no GPU does not erase a declared one: declared values
        # fill what discovery cannot tell (contract 3.2).
        target = SshTarget(
            id="g", host="g.test", capabilities=Capabilities(gpu=GpuInfo(type="nvidia"))
        )
        (known,) = lookup(discovery(FakeProber()), [target])
        assert known.capabilities.gpu is not None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    # A zombie is dead; only its parent has not read its status yet.
    return not (status.exists() and status.read_text().split()[2] == "Z")
