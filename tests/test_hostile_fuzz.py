"""Generated hostile documents through the real console script: random YAML shapes,
types, depths and sizes (most of them near a real task or targets file, so that they
reach the validation behind the parser), and random damage to real files. Whatever
the document, the command exits 0, 1 or 2, prints one line on error, never a
traceback, never a raw control character."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FLEET
from tests.hostile import assert_refused, assert_sane, run

TASK_KEYS = [
    "task", "name", "description", "requirements", "cpu", "memoryGb", "diskGb", "gpu",
    "required", "type", "model", "minVram", "count", "tools", "os", "arch", "network",
    "maxRuntimeMinutes", "maxCost", "allowCloud", "custom", "affinity", "antiAffinity",
    "preferences",
]  # fmt: skip
TARGET_KEYS = [
    "targets", "id", "type", "host", "port", "user", "identityFile", "labels", "hourlyRate",
    "capabilities", "maxConcurrentTasks", "instanceType", "instanceTypes", "instanceFamilies",
    "region", "maxHourlyRate", "spot", "cpu", "memoryGb", "gpu", "vramGb", "count", "tools",
]  # fmt: skip
WORDS = ["local", "ssh", "ec2", "nvidia", "amd", "any", "linux", "x64", "g5.xlarge", "*"]
HOSTILE_TEXT = st.text(
    alphabet=st.sampled_from(
        [*string.printable, "\x1b", "\x00", "\x7f", "\x9b", "\u202e", "[", "]", "/", "\u00e4"]
    ),
    max_size=40,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    HOSTILE_TEXT,
)


def documents(keys: list[str]) -> st.SearchStrategy[Any]:
    key = st.one_of(st.sampled_from(keys), HOSTILE_TEXT)
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=5), st.dictionaries(key, inner, max_size=6)
        ),
        max_leaves=40,
    )


def near(root: str, keys: list[str]) -> st.SearchStrategy[Any]:
    """Mostly `{root: ...}` documents, so that validation, not only YAML, is reached."""
    body = documents(keys)
    if root == "targets":
        body = st.lists(st.dictionaries(st.sampled_from(keys), documents(keys), max_size=8))
    return st.one_of(st.fixed_dictionaries({root: body}), documents(keys))


def check(home: Path, argv: list[str | Path]) -> None:
    ran = run(home, *argv, timeout=60)
    assert_sane(ran)
    if ran.code == 2:
        assert_refused(ran)


FUZZ = settings(
    max_examples=45,
    deadline=None,
    derandomize=True,  # the same documents on every run: CI never flakes on a new one
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(document=near("task", TASK_KEYS))
def test_generated_task_files(tmp_path_factory: Any, document: Any) -> None:
    home = tmp_path_factory.mktemp("fuzz")
    path = home / "task.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    check(home, ["place", path, "--targets", FLEET, "--no-discovery"])


@FUZZ
@given(document=near("targets", TARGET_KEYS))
def test_generated_targets_files(tmp_path_factory: Any, document: Any) -> None:
    home = tmp_path_factory.mktemp("fuzz")
    path = home / "targets.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    check(home, ["targets", "--targets", path, "--no-discovery"])


REAL_TASK = (
    Path(__file__).parent.parent / "examples" / "tasks" / "build-ml-model.yaml"
).read_text()


@FUZZ
@given(
    cuts=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(REAL_TASK)),
            st.integers(min_value=0, max_value=8),
            st.text(alphabet=st.sampled_from([*"{}[]:-&*!|>'\"#%@`\t\n ", "\x1b", "\x00"]),
                    max_size=4),
        ),
        min_size=1,
        max_size=4,
    )
)  # fmt: skip
def test_damaged_real_task_files(tmp_path_factory: Any, cuts: list[tuple[int, int, str]]) -> None:
    text = REAL_TASK
    for at, drop, insert in cuts:
        text = text[:at] + insert + text[at + drop :]
    home = tmp_path_factory.mktemp("fuzz")
    path = home / "task.yaml"
    path.write_text(text, encoding="utf-8")
    check(home, ["place", path, "--targets", FLEET, "--no-discovery"])
