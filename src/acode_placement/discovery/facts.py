"""Custom facts an operator names in the settings (`facts:`), discovered on local and
SSH targets with the probe: each an argument list run by the probe (every word
quoted: never a shell string, never an option to the probe), its output bounded, and
a pattern (RE2) that picks the value. A fact that cannot be read is unknown, with a
note that says why. The probers run the commands; this module writes them and reads
their answers. Facts that need code come from plug-ins: callables installed under
the `acode_placement.facts` entry-point group, run by `Discovery` after each full
probe of a local or SSH target.
"""

from __future__ import annotations

import asyncio
import math
import re
import shlex
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from importlib.metadata import entry_points
from typing import Any

from acode_placement.discovery.parse import ProbeReport, shorten
from acode_placement.models import AnyTarget, Capabilities, FactSpec
from acode_placement.rules.conditions import pattern
from acode_placement.telemetry import get_logger

_log = get_logger("acode_placement.discovery")

LINES = 20  # of a fact command's output, kept
CHARACTERS = 4096  # of that output, as one line
_VALUE = 256  # characters of a fact's value
_SHOWN = 80


def facts_script(facts: Mapping[str, FactSpec]) -> str:
    """The `acode_facts` function the probe calls (prepended to its script), or ''."""
    if not facts:
        return ""
    lines = ["acode_facts() {"]
    for name, spec in sorted(facts.items()):
        argv = " ".join(shlex.quote(word) for word in spec.command)
        # the name is checked (letters, digits, _ . -): safe inside the double quotes
        lines.append(f'  echo "fact {name} $(acode_run {argv} | acode_line {LINES} {CHARACTERS})"')
    lines.append("}")
    return "\n".join(lines) + "\n"


def read_facts(report: ProbeReport, facts: Mapping[str, FactSpec]) -> ProbeReport:
    """The report with each fact's value among the custom capabilities, or a note."""
    if not facts or not report.hardware:
        return report
    custom = dict(report.capabilities.custom)
    notes = list(report.notes)
    for name, spec in sorted(facts.items()):
        text = report.facts.get(name)
        value, why = _value(spec, text)
        if value is None:
            notes.append(f"fact {name} unknown: {why}")
        else:
            custom[name] = value
    caps = report.capabilities.model_copy(update={"custom": custom})
    return replace(report, capabilities=caps, notes=tuple(notes))


def _value(spec: FactSpec, text: str | None) -> tuple[str | None, str]:
    if text is None:
        return None, "the probe did not run it (a Windows target, or an older probe)"
    compiled = pattern(spec.pattern)
    found = compiled.search(text)
    shown = shorten(text, _SHOWN)
    if found is None:
        return None, f"{spec.pattern!r} found nothing in {shown!r}"
    value = found.group(1) if compiled.groups else found.group(0)
    if not value or len(value) > _VALUE:
        return None, f"{spec.pattern!r} matched {'nothing' if not value else 'too much'}"
    return str(value), ""


# ------------------------------------------------------ fact probers that need code
GROUP = "acode_placement.facts"
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
# A fact prober: called after each full probe of a local or SSH target with the
# target and what the probe found; answers {name: value} (str, int, float or bool).
FactProber = Callable[[AnyTarget, Capabilities], Awaitable[Mapping[str, Any]]]


def load_fact_probers() -> list[tuple[str, FactProber]]:
    """The fact probers installed under the `acode_placement.facts` entry-point group;
    one that cannot be loaded is logged and left out (it never breaks discovery)."""
    loaded: list[tuple[str, FactProber]] = []
    for point in entry_points(group=GROUP):
        try:
            prober = point.load()
            if not callable(prober):
                raise TypeError("not callable")
        except Exception as exc:  # a plug-in's bug must not stop discovery
            _log.warning("discovery.fact_prober_broken", name=point.name, error=str(exc)[:200])
            continue
        loaded.append((point.name, prober))
    return loaded


async def coded_facts(
    probers: Sequence[tuple[str, FactProber]],
    target: AnyTarget,
    report: ProbeReport,
    timeout: float,
) -> ProbeReport:
    """The report with what each fact prober answered among the custom capabilities;
    a prober that fails, overruns `timeout` or answers what is not a fact is a note."""
    if not probers or not report.hardware:
        return report
    custom = dict(report.capabilities.custom)
    notes = list(report.notes)
    for name, prober in probers:
        try:
            async with asyncio.timeout(timeout):
                answer = dict(await prober(target, report.capabilities))
        except TimeoutError:
            notes.append(f"fact prober {name} gave no answer within {timeout:g} s")
            continue
        except Exception as exc:  # a plug-in's bug must not stop discovery
            first = (str(exc).strip().splitlines() or [""])[0][:_SHOWN]
            notes.append(f"fact prober {name} failed: {type(exc).__name__}: {first}")
            continue
        for key, value in answer.items():
            if not isinstance(key, str) or not _KEY.match(key):
                notes.append(f"fact prober {name}: {str(key)[:_SHOWN]!r} is not a fact's name")
            elif not _value_ok(value):
                notes.append(f"fact prober {name}: {key} is not text, a number or a flag")
            else:
                custom[key] = value
    caps = report.capabilities.model_copy(update={"custom": custom})
    return replace(report, capabilities=caps, notes=tuple(notes))


def _value_ok(value: object) -> bool:
    """A value a custom capability may hold: short printable text, a finite number."""
    if isinstance(value, str):
        return 0 < len(value) <= _VALUE and value.isprintable()
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int)  # bool is an int
