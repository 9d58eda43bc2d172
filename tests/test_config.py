"""Files -> models: every error is one line naming file, line and key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acode_placement.config import (
    load_settings,
    load_targets,
    load_task,
    read_targets,
    resolve_settings,
)
from acode_placement.errors import InputError
from acode_placement.models import Mode, SshTarget, TieBreaker
from tests.conftest import EXAMPLES

Write = Callable[[str, Any], Path]

TASK_ERRORS = [
    (
        "misspelt-key",
        "task:\n  name: t\n  requirements:\n    cpu: 4\n    memroyGb: 16\n",
        "task.yaml:5: requirements.memroyGb: unknown key; did you mean memoryGb?",
    ),
    (
        "misspelt-nested-gpu-key",
        "task:\n  name: t\n  requirements:\n    gpu:\n      minVRAM: 8\n",
        "task.yaml:5: requirements.gpu.minVRAM: unknown key; did you mean minVram?",
    ),
    (
        "snake-case-is-not-the-file-format",
        "task:\n  name: t\n  requirements:\n    memory_gb: 16\n",
        "task.yaml:4: requirements.memory_gb: unknown key; did you mean memoryGb?",
    ),
    (
        "negative-number",
        "task:\n  name: t\n  requirements:\n    cpu: -4\n",
        "task.yaml:4: requirements.cpu: must be >= 0, got -4",
    ),
    (
        "wrong-type",
        "task:\n  name: t\n  requirements:\n    memoryGb: lots\n",
        "task.yaml:4: requirements.memoryGb: input should be a valid number",
    ),
    (
        "bad-os-with-hint",
        "task:\n  name: t\n  requirements:\n    os: linx\n",
        "task.yaml:4: requirements.os: must be one of linux, windows, macos; got 'linx'; "
        "did you mean linux?",
    ),
    (
        "tool-with-shell-characters",
        "task:\n  name: t\n  requirements:\n    tools: [git, 'rm -rf /; echo']\n",
        "task.yaml:4: requirements.tools[1]: invalid tool name 'rm -rf /; echo'",
    ),
    (
        "tool-command-substitution",
        "task:\n  name: t\n  requirements:\n    tools: ['$(reboot)']\n",
        "requirements.tools[0]: invalid tool name '$(reboot)'",
    ),
    (
        "tool-path",
        "task:\n  name: t\n  requirements:\n    tools: [/usr/bin/git]\n",
        "requirements.tools[0]: invalid tool name '/usr/bin/git'",
    ),
    (
        "missing-name",
        "task:\n  requirements: {cpu: 1}\n",
        "task.yaml:1: name: missing required key",
    ),
    ("empty-name", "task:\n  name: ''\n", "task.yaml:2: name: must not be empty"),
    ("empty-file", "", "task.yaml:1: empty file; expected a 'task:' mapping"),
    ("comments-only", "# nothing\n", "task.yaml:1: empty file"),
    ("not-a-mapping", "- a\n- b\n", "task.yaml:1: expected a 'task:' mapping, not a list"),
    ("wrong-top-key", "tsak:\n  name: t\n", "task.yaml:1: tsak: unknown key; did you mean task?"),
    ("yaml-syntax", "task:\n  name: [unclosed\n", "task.yaml:3: YAML error"),
    (
        "duplicate-key",
        "task:\n  name: a\n  name: b\n",
        "task.yaml:3: name: duplicate key (first at line 2)",
    ),
    (
        "gpu-count-zero",
        "task:\n  name: t\n  requirements:\n    gpu: {count: 0}\n",
        "task.yaml:4: requirements.gpu.count: must be > 0, got 0",
    ),
    (
        "unsafe-yaml-tag",
        "task:\n  name: !!python/object/apply:os.system ['echo hi']\n",
        "task.yaml:2: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
    ),
]


TARGET_ERRORS = [
    (
        "bad-type-with-hint",
        "targets:\n  - id: a\n    type: sshh\n    host: h\n",
        "targets.yaml:2: targets[0]: unknown type 'sshh'; use local, ssh, ec2; did you mean ssh?",
    ),
    (
        "missing-type",
        "targets:\n  - id: a\n",
        "targets.yaml:2: targets[0]: missing key 'type'",
    ),
    (
        "ssh-key-under-the-wrong-type",
        "targets:\n  - id: a\n    type: local\n    host: h\n",
        "targets.yaml:4: targets[0].host: unknown key",
    ),
    (
        "misspelt-capability",
        "targets:\n  - id: a\n    type: local\n    capabilities:\n      memoryGB: 3\n",
        "targets.yaml:5: targets[0].capabilities.memoryGB: unknown key; did you mean memoryGb?",
    ),
    (
        "misspelt-ssh-key",
        "targets:\n  - id: a\n    type: ssh\n    host: h\n    identityfile: k\n",
        "targets.yaml:5: targets[0].identityfile: unknown key; did you mean identityFile?",
    ),
    (
        "bad-port",
        "targets:\n  - id: a\n    type: ssh\n    host: h\n    port: 70000\n",
        "targets.yaml:5: targets[0].port: must be <= 65535, got 70000",
    ),
    (
        "negative-rate",
        "targets:\n  - id: a\n    type: ec2\n    instanceType: t3.micro\n    hourlyRate: -1\n",
        "targets.yaml:5: targets[0].hourlyRate: must be >= 0, got -1",
    ),
    (
        "empty-id",
        "targets:\n  - id: ''\n    type: local\n",
        "targets.yaml:2: targets[0].id: invalid id",
    ),
    (
        "duplicate-id",
        "targets:\n  - id: a\n    type: local\n  - id: b\n    type: local\n"
        "  - id: a\n    type: local\n",
        "targets.yaml:6: targets[2].id: duplicate id 'a' (first at line 2)",
    ),
    (
        "tool-name-in-capabilities",
        "targets:\n  - id: a\n    type: local\n    capabilities: {tools: ['a b']}\n",
        "targets.yaml:4: targets[0].capabilities.tools[0]: invalid tool name 'a b'",
    ),
]


ERRORS = [("task.yaml", *case) for case in TASK_ERRORS] + [
    ("targets.yaml", *case) for case in TARGET_ERRORS
]
LOADERS: dict[str, Callable[[Path], object]] = {
    "task.yaml": load_task,
    "targets.yaml": read_targets,
}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [(name, content, expected) for name, _, content, expected in ERRORS],
    ids=[f"{name.split('.')[0]}-{case}" for name, case, _, _ in ERRORS],
)
def test_errors_name_file_line_and_key(
    write: Write, name: str, content: str, expected: str
) -> None:
    path = write(name, content)
    with pytest.raises(InputError) as info:
        LOADERS[name](path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path.parent) + "/")
    assert expected in message


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00")
    with pytest.raises(InputError, match=r"task.yaml: binary file, not YAML$"):
        load_task(path)


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_bytes(b"task:\n  name: caf\xe9\n")
    with pytest.raises(InputError, match=r"task.yaml:2: not UTF-8 text \(bad byte at offset 17\)"):
        load_task(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.yaml: no such file"):
        load_task(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="is a directory"):
        load_task(tmp_path)


def test_alias_bomb_is_refused_quickly(write: Write) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
        for i in range(1, 12)
    ]
    path = write("task.yaml", "\n".join(lines) + "\n")
    with pytest.raises(InputError, match="too large"):
        load_task(path)


def test_anchors_and_merge_keys_work(write: Write) -> None:
    path = write(
        "targets.yaml",
        "targets:\n"
        "  - id: a\n    type: local\n    capabilities: &caps {os: linux, arch: x64, cpu: 8}\n"
        "  - id: b\n    type: ssh\n    host: b\n"
        "    capabilities:\n      <<: *caps\n      cpu: 16\n",
    )
    a, b = load_targets(path)
    assert a.capabilities is not None and b.capabilities is not None
    assert (a.capabilities.cpu, b.capabilities.cpu, b.capabilities.arch) == (8, 16, "x64")


def test_examples_load() -> None:
    targets = load_targets(EXAMPLES / "targets.yaml")
    assert len(targets) >= 8
    assert {t.kind.value for t in targets} == {"local", "ssh", "ec2"}
    gpu_box = next(t for t in targets if t.id == "gpu-box")
    assert isinstance(gpu_box, SshTarget) and gpu_box.user == "ci"
    settings = load_settings(EXAMPLES / "placement.yaml")
    assert (settings.strategy, settings.mode) == ("auto", Mode.BURST)
    for task in (EXAMPLES / "tasks").glob("*.yaml"):
        assert load_task(task).name


class TestSettingsLookup:
    def test_defaults_without_any_file(self) -> None:
        settings, source = resolve_settings(None)
        assert source is None
        assert (settings.strategy, settings.mode, settings.tie_breaker) == (
            "auto",
            Mode.BURST,
            TieBreaker.FIRST,
        )

    def test_file_from_environment(self, write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
        path = write("p.yaml", {"placement": {"strategy": "performance"}})
        monkeypatch.setenv("ACODE_PLACEMENT_CONFIG", str(path))
        settings, source = resolve_settings(None)
        assert (settings.strategy, source) == ("performance", str(path))

    def test_file_from_user_config_dir(
        self, write: Write, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
        (tmp_path / "cfg" / "acode-placement").mkdir(parents=True)
        (tmp_path / "cfg" / "acode-placement" / "placement.yaml").write_text(
            "placement:\n  mode: local-only\n"
        )
        settings, _ = resolve_settings(None)
        assert settings.mode is Mode.LOCAL_ONLY

    def test_environment_values_override_the_file(
        self, write: Write, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = write("p.yaml", {"placement": {"mode": "local-only", "tieBreaker": "id"}})
        monkeypatch.setenv("ACODE_PLACEMENT_MODE", "airgapped")
        settings, _ = resolve_settings(path)
        assert (settings.mode, settings.tie_breaker) == (Mode.AIRGAPPED, TieBreaker.ID)

    def test_bad_environment_value_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ACODE_PLACEMENT_MODE", "everywhere")
        with pytest.raises(InputError, match=r"^environment ACODE_PLACEMENT_MODE: must be one of"):
            resolve_settings(None)

    def test_settings_file_errors_have_lines(self, write: Write) -> None:
        path = write("p.yaml", "placement:\n  strategy: auto\n  cacheMinutes: -5\n")
        with pytest.raises(InputError, match=r"p.yaml:3: cacheMinutes: must be >= 0, got -5"):
            resolve_settings(path)
