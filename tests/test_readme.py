"""The README's examples, run: every `$ acode-placement ...` line in a fenced block is
run from the repository's root, as a user would, and must exit as its output says
(an error line: 2; `no target`: 1; otherwise 0) and print what the README shows.

What may differ is set aside on both sides before comparing: timings, and what
discovery says about the example fleet's made-up hosts (declared at first, then
unreachable, depending on the run). Rows about `local` are this machine's and are
not compared. A block that stands for the reader's own files is marked
`<!-- illustrative: why -->` on the line before it, and is not run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile import run

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
_FENCE = re.compile(r"^(<!-- illustrative: (?P<why>[^>]+) -->\n)?```[a-z]*\n(?P<body>.*?)^```$",
                    re.MULTILINE | re.DOTALL)  # fmt: skip
_TIMING = re.compile(r"\b\d+(\.\d+)? ms\b|[\d,]+ simulated jobs/s \([\d.]+ s\)")
# "; gpu-box unreachable (...): declared capabilities used", in a why line or a row
_DISCOVERY = re.compile(
    r"(; | \| )[\w.-]+ (?:declared|stale|unreachable|unverified) \(.*?\):"
    r" (?:declared|last known) capabilities used"
)


@dataclass(frozen=True)
class Example:
    line: int
    argv: list[str]
    shown: list[str]

    @property
    def code(self) -> int:
        first = self.shown[0] if self.shown else ""
        if first.startswith("acode-placement: error:"):
            return 2
        return 1 if first.startswith("no target (") else 0


def examples() -> tuple[list[Example], list[tuple[int, str]]]:
    """The examples to run, and the illustrative blocks (line, why) set aside."""
    text = README.read_text()
    found: list[Example] = []
    skipped: list[tuple[int, str]] = []
    for block in _FENCE.finditer(text):
        body = block["body"]
        if "$ acode-placement" not in body:
            continue
        line = text.count("\n", 0, block.start("body")) + 1
        if block["why"]:
            skipped.append((line, block["why"]))
            continue
        current: Example | None = None
        for offset, row in enumerate(body.splitlines()):
            if row.startswith("$ acode-placement "):
                argv = shlex.split(row.removeprefix("$ acode-placement "))
                current = Example(line + offset, argv, [])
                found.append(current)
            elif current is not None:
                current.shown.append(row)
    return found, skipped


def plain(text: str) -> str:
    """`text` without timings and discovery's words, spaces collapsed (a table's
    column widths follow the longest cell, this machine's included)."""
    return " ".join(_DISCOVERY.sub("", _TIMING.sub("_ ms", text)).split())


def about_this_machine(row: str) -> bool:
    """A table row (or its continuation) about `local`, this machine's own figures."""
    cells = row.split()
    return bool(cells) and ("local" in cells[:2] or row.startswith(" " * 20))


RUN, SKIPPED = examples()


def test_the_readme_has_examples_to_run_and_says_why_others_are_not() -> None:
    assert len(RUN) >= 6, RUN
    assert all(why.strip() for _, why in SKIPPED)


@pytest.mark.parametrize("example", RUN, ids=[f"README.md:{e.line}" for e in RUN])
def test_a_readme_example_prints_what_the_readme_shows(tmp_path: Path, example: Example) -> None:
    ran = run(tmp_path, *example.argv, timeout=120, cwd=ROOT)
    assert ran.code == example.code, (example.line, ran.code, ran.out[-1500:], ran.err[-1500:])
    printed = [plain(row) for row in (ran.out + ran.err).splitlines()]
    for row in example.shown:
        if row.strip() in ("", "...") or about_this_machine(row):
            continue
        assert plain(row) in printed, (
            f"README.md:{example.line}: {example.argv}\nexpected: {plain(row)}\nprinted:\n"
            + "\n".join(printed)
        )
