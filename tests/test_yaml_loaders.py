"""The two ways a file is read: libyaml's parser (what a PyYAML wheel ships, and what
is used when it is there) and PyYAML's own, pure Python (the fallback). Both must
read every file alike: the same values, the same line for every key, and a one-line
refusal of every structural attack and every character YAML does not allow. (One
difference stays: libyaml, as YAML 1.2 does, takes a tab after `key:` as a space;
PyYAML's parser refuses it.)"""

from __future__ import annotations

import contextlib
import gc
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acode_placement import config
from acode_placement.errors import InputError
from tests.test_hostile_files import STRUCTURAL

LOADERS = ("libyaml", "python")


@pytest.fixture(params=LOADERS)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "libyaml" and not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml here")
    if request.param == "python":
        monkeypatch.setattr(config, "_CLoader", None)
    return str(request.param)


def _read(text: str) -> tuple[Any, dict[Any, int]]:
    """The values and every key's line, both read now (the lines are found when
    first asked, with the parser in use then)."""
    data, lines = config._compose(text, "f.yaml")
    return data, dict(lines)


def test_libyaml_reads_when_it_is_there() -> None:
    made = config._loader("a: 1\n", "f.yaml")
    try:
        if yaml.__with_libyaml__:
            assert isinstance(made, yaml.CSafeLoader)
        else:
            assert isinstance(made, config._Loader)
    finally:
        made.dispose()


# Text cases only: a NUL byte and bytes that are not UTF-8 are refused before either
# parser sees the text.
TEXT_ATTACKS = {
    name: case
    for name, case in STRUCTURAL.items()
    if isinstance(case[0], str) and "binary file" not in case[1]
}


@pytest.mark.parametrize(("text", "mention"), TEXT_ATTACKS.values(), ids=TEXT_ATTACKS.keys())
def test_attacks_are_refused_alike(loader: str, text: str, mention: str) -> None:
    root = "targets"
    try:
        data, _ = _read(text.replace("{root}", root))
    except InputError as exc:
        line = str(exc)
        assert "\n" not in line
        assert line.startswith("f.yaml")
        assert mention.replace("{root}", root) in line
        return
    # Parsed (an empty file, the wrong kind of root): `parse` refuses it, in one line
    with pytest.raises(InputError) as refused:
        config.parse(text.replace("{root}", root), "f.yaml", config.TargetsFile)
    assert mention.replace("{root}", root) in str(refused.value), data


def test_nesting_just_within_the_limit_reads(loader: str) -> None:
    depth = config.MAX_DEPTH - 1  # the root mapping is one level
    data, _ = _read("a: " + "[" * depth + "]" * depth + "\n")
    inner = data["a"]
    for _ in range(depth - 1):
        inner = inner[0]
    assert inner == []


def test_one_level_deeper_is_refused(loader: str) -> None:
    depth = config.MAX_DEPTH
    with pytest.raises(InputError, match="nested more than 64 levels deep"):
        _read("a: " + "[" * depth + "]" * depth + "\n")


def test_aliases_and_merge_keys_read_alike(loader: str) -> None:
    text = (
        "base: &caps {cpu: 8, memoryGb: 32}\n"
        "targets:\n"
        "  - {id: a, capabilities: *caps}\n"
        "  - id: b\n"
        "    capabilities:\n"
        "      <<: *caps\n"
        "      cpu: 16\n"
    )
    data, lines = _read(text)
    assert data["targets"][1]["capabilities"] == {"cpu": 16, "memoryGb": 32}
    assert data["targets"][0]["capabilities"] == {"cpu": 8, "memoryGb": 32}
    assert lines[("targets", 1, "capabilities", "cpu")] == 7


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
KEYS = st.text(min_size=1, max_size=8)
DOCUMENTS = st.dictionaries(
    KEYS,
    st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
        max_leaves=20,
    ),
    max_size=5,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS, flow=st.booleans())
def test_both_parsers_read_any_document_alike(document: dict[str, Any], flow: bool) -> None:
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True)
    results = []
    for use_c in (True, False):
        saved = config._CLoader
        try:
            if not use_c:
                config._CLoader = None
            try:
                results.append(("read", *_read(text)))
            except InputError as exc:  # too deep, for instance: refused alike
                results.append(("refused", str(exc), None))
        finally:
            config._CLoader = saved
    assert results[0] == results[1]
    if results[0][0] == "read":
        assert results[0][1] == yaml.safe_load(text)


@pytest.mark.parametrize("text", ["a: [1, 2]\n", "a: !!binary aGk=\n", "a: [\n"])
def test_the_collector_is_as_it_was_after_a_read(text: str) -> None:
    """Reading pauses the garbage collector; whatever the file, it is left as it was
    found: on (it must never stay off in a long-lived service), or off."""
    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            with contextlib.suppress(InputError):
                _read(text)
            assert gc.isenabled() is enabled
        finally:
            gc.enable()


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\nb: \x7f\n",
        "a: \u00e9\u00e9\u00e9\nb: x\x1b[31m\n",  # UTF-8 before it: libyaml counts bytes
        "a: 1\nb: [1, 2]\nc: '\x08'\n",
    ],
)
def test_a_character_yaml_does_not_allow_is_one_line_with_its_line(loader: str, text: str) -> None:
    line = text.count("\n", 0, next(i for i, c in enumerate(text) if c in "\x7f\x1b\x08")) + 1
    with pytest.raises(InputError) as refused:
        _read(text)
    message = str(refused.value)
    assert message.startswith(f"f.yaml:{line}: YAML error: character U+00")
    assert "is not allowed" in message
    assert "\n" not in message
