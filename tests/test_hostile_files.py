"""Hostile files: task, targets and settings files (and the environment) an attacker
writes, through the real console script. Each case asserts the property, not a
message: exit 2, one line naming the file (and line and key where there is one),
no traceback, no secret, no raw control character; and where a value is accepted,
that it works."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import FLEET
from tests.hostile import assert_refused, assert_sane, run

GOOD_TASK = "task:\n  name: ok\n  requirements: {cpu: 1}\n"
GOOD_SETTINGS = "placement:\n  strategy: auto\n"

# Attacks on the YAML itself, for every kind of file: {root} is its top-level key.
STRUCTURAL: dict[str, tuple[str | bytes, str]] = {
    "binary-tag": ("{root}:\n  name: !!binary aGk=\n", ":2: YAML tag"),
    "str-tag-on-number": ("{root}: !!str 12\n", ":1: YAML tag"),
    "set-tag": ("{root}: !!set {a, b}\n", ":1: YAML tag"),
    "omap-tag": ("{root}: !!omap [a: 1]\n", ":1: YAML tag"),
    "pairs-tag": ("{root}: !!pairs [a: 1]\n", ":1: YAML tag"),
    "python-object": ("{root}: !!python/object/apply:os.system [id]\n", ":1: YAML tag"),
    "python-name": ("{root}: !!python/name:os.system ''\n", ":1: YAML"),
    "local-tag": ("{root}: !evil x\n", ":1: YAML"),
    "deep-flow": ("{root}: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64"),
    "deep-block": (
        "{root}:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 3000)),
        "nested more than 64",
    ),
    "billion-laughs": (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]\n"
            for p, n in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "{root}: *i\n",
        "alias bomb",
    ),
    "recursive-alias": ("{root}: &a [*a]\n", "recursive alias"),
    "duplicate-key": ("{root}: {}\n{root}: {}\n", ":2: {root}: duplicate key"),
    "tab-indent": ("{root}:\n\t- x\n", ":2: YAML error"),
    "unclosed-quote": ('{root}: "abc\n', "YAML error"),
    "two-documents": ("{root}: {}\n---\n{root}: {}\n", "YAML error"),
    "nul-byte": ("{root}: \x00\n", "binary file"),
    "control-character": ("{root}:\n  name: \x7f\n", ":2: YAML error: character U+007F"),
    "escape-character": ("# \u00e9\u00e9\n{root}: \x1b[2J\n", ":2: YAML error: character U+001B"),
    "not-utf8": (b"{root}: \xff\xfe\n", "not UTF-8"),
    "empty": ("", "empty file"),
    "comment-only": ("# nothing\n", "empty file"),
    "top-list": ("- 1\n- 2\n", "expected a '"),
    "top-scalar": ("hello\n", "expected a '"),
    "root-scalar": ("{root}: 12\n", ":1: "),
    "root-list-of-lists": ("{root}: [[[]]]\n", ":1: "),
    "anchor-to-unknown": ("{root}: *nowhere\n", "YAML error"),
}
KINDS = ("task", "targets", "settings")
ROOTS = {"task": "task", "targets": "targets", "settings": "placement"}


def feed(home: Path, kind: str, path: Path) -> list[str | Path]:
    """The command line that makes acode-placement read `path` as a `kind` file."""
    fleet = ["--targets", FLEET, "--no-discovery"]
    if kind == "task":
        return ["place", path, *fleet]
    if kind == "targets":
        return ["targets", "--targets", path, "--no-discovery"]
    task = home / "ok-task.yaml"
    task.write_text(GOOD_TASK)
    return ["explain", task, "--config", path, *fleet]


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("text", "mention"), STRUCTURAL.values(), ids=STRUCTURAL.keys())
def test_structural_attacks_are_one_line(
    tmp_path: Path, kind: str, text: str | bytes, mention: str
) -> None:
    root = ROOTS[kind]
    content = (
        text.replace(b"{root}", root.encode())
        if isinstance(text, bytes)
        else text.replace("{root}", root)
    )
    path = write(tmp_path / f"{kind}.yaml", content)
    line = assert_refused(run(tmp_path, *feed(tmp_path, kind, path)), f"{path}")
    assert mention.replace("{root}", root) in line


SPECIAL_FILES = {
    "fifo": "not a regular file",
    "dev-zero": "not a regular file",
    "dev-null": "not a regular file",
    "directory": "is a directory",
    "missing": "no such file",
    "too-large": "too large",
    "escape-in-name": "no such file",
}


def special(tmp_path: Path, name: str) -> Path:
    if name == "fifo":
        path = tmp_path / "pipe.yaml"
        os.mkfifo(path)  # no writer: a plain open() would wait for ever
        return path
    if name == "dev-zero":
        return Path("/dev/zero")
    if name == "dev-null":
        return Path("/dev/null")
    if name == "directory":
        return tmp_path
    if name == "too-large":
        path = tmp_path / "big.yaml"
        with path.open("w") as file:
            file.write("# " + "x" * 1000 + "\n" * 1)
            file.truncate(33 * 1024 * 1024)
        return path
    if name == "escape-in-name":
        return tmp_path / "t\x1b[31m\u202e.yaml"
    return tmp_path / "nothing-here.yaml"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "mention"), SPECIAL_FILES.items(), ids=SPECIAL_FILES.keys())
def test_files_that_are_not_files(tmp_path: Path, kind: str, name: str, mention: str) -> None:
    path = special(tmp_path, name)
    ran = run(tmp_path, *feed(tmp_path, kind, path), timeout=20)
    assert mention in assert_refused(ran)


# Values an attacker puts in a task: each refused with the key it is under.
TASK_VALUES: dict[str, tuple[dict[str, object], str]] = {
    "cpu-true": ({"cpu": True}, "requirements.cpu: expected a number"),
    "cpu-inf": ({"cpu": float("inf")}, "requirements.cpu: input should be a finite"),
    "cpu-nan": ({"cpu": float("nan")}, "requirements.cpu: input should be a finite"),
    "cpu-negative": ({"cpu": -1}, "requirements.cpu: must be >= 0"),
    "cpu-huge": ({"cpu": 1e13}, "requirements.cpu: must be <="),
    "cpu-word": ({"cpu": "lots"}, "requirements.cpu"),
    "memory-list": ({"memoryGb": [1]}, "requirements.memoryGb"),
    "network-one": ({"network": 1}, "requirements.network: expected true or false"),
    "network-float": ({"network": 2.5}, "requirements.network: expected true or false"),
    "allow-cloud-zero": ({"allowCloud": 0}, "requirements.allowCloud"),
    "runtime-1e308": ({"maxRuntimeMinutes": 1e308}, "requirements.maxRuntimeMinutes: must be"),
    "runtime-zero": ({"maxRuntimeMinutes": 0}, "requirements.maxRuntimeMinutes: must be > 0"),
    "runtime-inf": ({"maxRuntimeMinutes": float("inf")}, "requirements.maxRuntimeMinutes"),
    "cost-negative": ({"maxCost": -5}, "requirements.maxCost"),
    "gpu-count-true": ({"gpu": {"count": True}}, "requirements.gpu.count: expected a number"),
    "gpu-count-zero": ({"gpu": {"count": 0}}, "requirements.gpu.count"),
    "gpu-vram-inf": ({"gpu": {"minVram": float("inf")}}, "requirements.gpu.minVram"),
    "gpu-type": ({"gpu": {"type": "evil"}}, "requirements.gpu.type: must be one of"),
    "gpu-required-one": ({"gpu": {"required": 1}}, "requirements.gpu.required"),
    "tool-option": ({"tools": ["--tools-only"]}, "requirements.tools[0]: invalid tool name"),
    "tool-dash": ({"tools": ["-x"]}, "requirements.tools[0]: invalid tool name"),
    "tool-space": ({"tools": ["a b"]}, "requirements.tools[0]: invalid tool name"),
    "tool-subshell": ({"tools": ["$(id)"]}, "requirements.tools[0]: invalid tool name"),
    "tool-semicolon": ({"tools": [";rm -rf /"]}, "requirements.tools[0]: invalid tool name"),
    "tool-path": ({"tools": ["../bin/sh"]}, "requirements.tools[0]: invalid tool name"),
    "tool-empty": ({"tools": [""]}, "requirements.tools[0]: invalid tool name"),
    "tool-long": ({"tools": ["x" * 65]}, "requirements.tools[0]: invalid tool name"),
    "tool-unicode": ({"tools": ["pyth\u00f6n"]}, "requirements.tools[0]: invalid tool name"),
    "tool-newline": ({"tools": ["a\nb"]}, "requirements.tools[0]: invalid tool name"),
    "tool-escape": ({"tools": ["a\x1b[2J"]}, "requirements.tools[0]: invalid tool name"),
    "tool-mapping": ({"tools": [{"a": 1}]}, "requirements.tools[0]"),
    "preference-tool-option": (
        {"preferences": {"tools": ["--tools-only"]}},
        "requirements.preferences.tools[0]: invalid tool name",
    ),
    "preference-cpu-true": ({"preferences": {"cpu": True}}, "requirements.preferences.cpu"),
    "custom-list": ({"custom": {"k": [1, 2]}}, "requirements.custom"),
    "custom-mapping": ({"custom": {"k": {"a": 1}}}, "requirements.custom"),
    # past a float's range: the rules compare numbers as floats, the words print them
    "custom-huge-integer": ({"custom": {"k": 9 * 10**400}}, "requirements.custom.k: an integer"),
    "custom-choice-huge": (
        {"custom": {"k": {"in": [1, -(2**64)]}}},
        "requirements.custom.k: in: an integer must be within",
    ),
    "os-injection": ({"os": "linux; rm -rf /"}, "requirements.os: must be one of"),
    "arch-true": ({"arch": True}, "requirements.arch"),
    "misspelt-key": ({"memroyGb": 4}, "did you mean memoryGb?"),
    "key-like-a-type": ({"cpu(": 1}, "requirements.cpu(: unknown key; did you mean cpu?"),
    "key-with-brackets": ({"tuple[str]": 1}, "requirements.tuple[str]: unknown key"),
}


@pytest.mark.parametrize(("requirements", "mention"), TASK_VALUES.values(), ids=TASK_VALUES.keys())
def test_task_values(tmp_path: Path, requirements: dict[str, object], mention: str) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump({"task": {"name": "t", "requirements": requirements}}))
    line = assert_refused(run(tmp_path, *feed(tmp_path, "task", path)), f"{path}:")
    assert mention in line


@pytest.mark.parametrize(
    "name", ["", 12, True, None, ["a"]], ids=["empty", "number", "bool", "null", "list"]
)
def test_task_names(tmp_path: Path, name: object) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump({"task": {"name": name}}))
    assert "task.yaml:2: name" in assert_refused(run(tmp_path, *feed(tmp_path, "task", path)))


SSH = {"id": "box", "type": "ssh", "host": "box.invalid"}
TARGET_VALUES: dict[str, tuple[dict[str, object], str]] = {
    "id-empty": ({**SSH, "id": ""}, "targets[0].id"),
    "id-path": ({**SSH, "id": "../etc/passwd"}, "targets[0].id: invalid id"),
    "id-markup": ({**SSH, "id": "[/]"}, "targets[0].id: invalid id"),
    "id-space": ({**SSH, "id": "a b"}, "targets[0].id: invalid id"),
    "id-escape": ({**SSH, "id": "a\x1b[2J"}, "targets[0].id: invalid id"),
    "type": ({**SSH, "type": "evil"}, "targets[0]: unknown type 'evil'"),
    "port-zero": ({**SSH, "port": 0}, "targets[0].port"),
    "port-huge": ({**SSH, "port": 70000}, "targets[0].port"),
    "port-true": ({**SSH, "port": True}, "targets[0].port: expected a number"),
    "host-empty": ({**SSH, "host": ""}, "targets[0].host"),
    "host-option": ({**SSH, "host": "-oProxyCommand=touch /tmp/x"}, "targets[0].host: invalid"),
    "host-space": ({**SSH, "host": "a b"}, "targets[0].host: invalid host"),
    "host-newline": ({**SSH, "host": "a\nb"}, "targets[0].host: invalid host"),
    "user-option": ({**SSH, "user": "-oProxyCommand=x"}, "targets[0].user: invalid user"),
    "user-space": ({**SSH, "user": "a b"}, "targets[0].user: invalid user"),
    "identity-escape": ({**SSH, "identityFile": "k\x1b[2J"}, "targets[0].identityFile"),
    "rate-inf": ({**SSH, "hourlyRate": float("inf")}, "targets[0].hourlyRate"),
    "rate-negative": ({**SSH, "hourlyRate": -1}, "targets[0].hourlyRate"),
    "rate-true": ({**SSH, "hourlyRate": True}, "targets[0].hourlyRate: expected a number"),
    "concurrency-zero": ({**SSH, "maxConcurrentTasks": 0}, "targets[0].maxConcurrentTasks"),
    "concurrency-true": ({**SSH, "maxConcurrentTasks": True}, "targets[0].maxConcurrentTasks"),
    "concurrency-huge": ({**SSH, "maxConcurrentTasks": 10**30}, "targets[0].maxConcurrentTasks"),
    "cap-cpu-negative": ({**SSH, "capabilities": {"cpu": -1}}, "targets[0].capabilities.cpu"),
    "cap-cpu-true": ({**SSH, "capabilities": {"cpu": True}}, "targets[0].capabilities.cpu"),
    "cap-tool-option": (
        {**SSH, "capabilities": {"tools": ["--tools-only"]}},
        "targets[0].capabilities.tools[0]: invalid tool name",
    ),
    "cap-runtime-inf": (
        {**SSH, "capabilities": {"maxRuntimeMinutes": float("inf")}},
        "targets[0].capabilities.maxRuntimeMinutes",
    ),
    "cap-gpu-count-nan": (
        {**SSH, "capabilities": {"gpu": {"type": "nvidia", "count": float("nan")}}},
        "targets[0].capabilities.gpu.count",
    ),
    "labels-list": ({**SSH, "labels": {"a": [1]}}, "targets[0].labels"),
    "cap-custom-huge-integer": (
        {**SSH, "capabilities": {"custom": {"k": 10**30}}},
        "targets[0].capabilities.custom.k: an integer must be within",
    ),
    "instance-type-injection": (
        {"id": "g", "type": "ec2", "instanceType": "g5.xlarge; rm"},
        "targets[0].instanceType",
    ),
    "region-newline": (
        {"id": "g", "type": "ec2", "instanceType": "g5.xlarge", "region": "us-east-1\nx"},
        "targets[0].region",
    ),
    "ec2-two-choices": (
        {"id": "g", "type": "ec2", "instanceType": "g5.xlarge", "instanceTypes": ["g5.2xlarge"]},
        "give exactly one of",
    ),
    "spot-one": ({"id": "g", "type": "ec2", "instanceType": "g5.xlarge", "spot": 1}, "spot"),
}


@pytest.mark.parametrize(("target", "mention"), TARGET_VALUES.values(), ids=TARGET_VALUES.keys())
def test_target_values(tmp_path: Path, target: dict[str, object], mention: str) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": [target]}))
    line = assert_refused(run(tmp_path, *feed(tmp_path, "targets", path)), f"{path}:")
    assert mention in line


def test_duplicate_target_ids(tmp_path: Path) -> None:
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump({"targets": [SSH, SSH]}))
    assert "duplicate id 'box'" in assert_refused(run(tmp_path, "targets", "--targets", path))


SETTINGS_VALUES: dict[str, tuple[dict[str, object], str]] = {
    "cache-1e308": ({"cacheMinutes": 1e308}, "cacheMinutes: must be <="),
    "cache-inf": ({"cacheMinutes": float("inf")}, "cacheMinutes"),
    "cache-negative": ({"cacheMinutes": -1}, "cacheMinutes"),
    "grace-inf": ({"reservationGraceMinutes": float("inf")}, "reservationGraceMinutes"),
    "grace-1e308": ({"reservationGraceMinutes": 1e308}, "reservationGraceMinutes: must be"),
    "decision-timeout-zero": ({"decisionTimeout": 0}, "decisionTimeout"),
    "decision-timeout-huge": ({"decisionTimeout": 1e9}, "decisionTimeout: must be <="),
    "probe-timeout-negative": ({"probeTimeout": -1}, "probeTimeout"),
    "concurrency-zero": ({"discoveryConcurrency": 0}, "discoveryConcurrency"),
    "concurrency-huge": ({"discoveryConcurrency": 5000}, "discoveryConcurrency"),
    "concurrency-true": ({"discoveryConcurrency": True}, "discoveryConcurrency"),
    "fallback-one": ({"fallbackEnabled": 1}, "fallbackEnabled: expected true or false"),
    "retention-days-inf": ({"historyRetentionDays": float("inf")}, "historyRetentionDays"),
    "retention-count-zero": ({"historyRetentionCount": 0}, "historyRetentionCount"),
    "default-runtime-1e308": ({"defaultRuntimeMinutes": 1e308}, "defaultRuntimeMinutes"),
    "mode": ({"mode": "evil"}, "mode: must be one of"),
    "strategy-empty": ({"strategy": ""}, "strategy"),
    "tie-breaker": ({"tieBreaker": "random"}, "tieBreaker"),
    "log-level": ({"logLevel": "trace"}, "logLevel"),
    "history-true": ({"history": True}, "history"),
    "history-durability": ({"historyDurability": "sometimes"}, "historyDurability: must be one of"),
    "history-durability-flag": ({"historyDurability": True}, "historyDurability"),
}


@pytest.mark.parametrize(
    ("settings", "mention"), SETTINGS_VALUES.values(), ids=SETTINGS_VALUES.keys()
)
def test_settings_values(tmp_path: Path, settings: dict[str, object], mention: str) -> None:
    path = tmp_path / "placement.yaml"
    path.write_text(yaml.safe_dump({"placement": settings}))
    line = assert_refused(run(tmp_path, *feed(tmp_path, "settings", path)), f"{path}:")
    assert mention in line


ENVIRONMENT = {
    "cache-1e308": ("ACODE_PLACEMENT_CACHE_MINUTES", "1e308"),
    "cache-inf": ("ACODE_PLACEMENT_CACHE_MINUTES", "inf"),
    "cache-nan": ("ACODE_PLACEMENT_CACHE_MINUTES", "nan"),
    "grace-inf": ("ACODE_PLACEMENT_RESERVATION_GRACE_MINUTES", "inf"),
    "mode": ("ACODE_PLACEMENT_MODE", "evil\x1b[2J"),
    "discovery-two": ("ACODE_PLACEMENT_DISCOVERY_ENABLED", "2"),
    "timeout-negative": ("ACODE_PLACEMENT_DECISION_TIMEOUT", "-1"),
    "log-level": ("ACODE_PLACEMENT_LOG_LEVEL", "[/]"),
    "history-durability": ("ACODE_PLACEMENT_HISTORY_DURABILITY", "eventually"),
}


@pytest.mark.parametrize(("name", "value"), ENVIRONMENT.values(), ids=ENVIRONMENT.keys())
def test_environment_values(tmp_path: Path, name: str, value: str) -> None:
    task = write(tmp_path / "task.yaml", GOOD_TASK)
    ran = run(tmp_path, "place", task, "--targets", FLEET, "--no-discovery", **{name: value})
    assert name in assert_refused(ran)


class TestWhatMustStillWork:
    """Limits that refuse attacks must not refuse real files."""

    def test_a_fleet_of_20000_targets_loads(self, tmp_path: Path) -> None:
        lines = ["targets:"]
        for n in range(20_000):
            lines.append(f"  - {{id: host-{n}, type: ssh, host: h{n}.internal, port: 22,")
            lines.append("     capabilities: {cpu: 8, memoryGb: 32, tools: [git, docker]}}")
        path = write(tmp_path / "targets.yaml", "\n".join(lines) + "\n")
        ran = run(tmp_path, "place", write(tmp_path / "t.yaml", GOOD_TASK), "--targets", path)
        assert_sane(ran)
        assert ran.code == 0, ran.err

    def test_anchors_and_merge_keys_are_fine(self, tmp_path: Path) -> None:
        path = write(
            tmp_path / "targets.yaml",
            "targets:\n"
            "  - {id: a, type: ssh, host: a.internal, capabilities: &caps {cpu: 8, memoryGb: 32}}\n"
            "  - {id: b, type: ssh, host: b.internal, capabilities: {<<: *caps, cpu: 16}}\n",
        )
        ran = run(tmp_path, "targets", "--targets", path, "--no-discovery", "--json")
        assert ran.code == 0, ran.err
        assert '"cpu": 16' in ran.out and '"cpu": 8' in ran.out

    def test_the_longest_runtime_reserves(self, tmp_path: Path) -> None:
        task = write(
            tmp_path / "task.yaml",
            "task:\n  name: long\n  requirements: {cpu: 1, maxRuntimeMinutes: 5256000}\n",
        )
        settings = write(tmp_path / "p.yaml", "placement:\n  reservationGraceMinutes: 525600\n")
        ran = run(
            tmp_path, "place", task, "--targets", FLEET, "--no-discovery", "--config", settings,
            "--reserve",
        )  # fmt: skip
        assert_sane(ran)
        assert ran.code == 0 and "reserved:" in ran.out
