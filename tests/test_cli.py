"""The command line: outputs, exit codes, and bad input as one line with exit 2."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acode_placement import load_targets
from tests import hostile
from tests.conftest import EXAMPLES, FLEET, Cli
from tests.hostile import SCRIPT, environment
from tests.sshd import free_port

Write = Callable[[str, Any], Path]
GOOD_TASK = {"task": {"name": "t", "requirements": {"cpu": 2, "os": "linux"}}}


def command() -> list[str]:
    script = shutil.which("acode-placement", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "acode_placement"]


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command(), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


class TestBadInputFromTheRealCommand:
    """Each gives one clear line on stderr, exit status 2, and no traceback."""

    CASES = [
        (
            "misspelt-key",
            "task:\n  name: t\n  requirements:\n    memroyGb: 16\n",
            [],
            "task.yaml:4: requirements.memroyGb: unknown key; did you mean memoryGb?",
        ),
        (
            "wrong-type",
            "task:\n  name: t\n  requirements:\n    cpu: [1]\n",
            [],
            "task.yaml:4: requirements.cpu: ",
        ),
        (
            "negative",
            "task:\n  name: t\n  requirements:\n    diskGb: -1\n",
            [],
            "task.yaml:4: requirements.diskGb: must be >= 0, got -1",
        ),
        (
            "shell-tool",
            "task:\n  name: t\n  requirements:\n    tools: ['git; rm -rf ~']\n",
            [],
            "invalid tool name 'git; rm -rf ~'",
        ),
        ("empty-file", "", [], "task.yaml:1: empty file"),
        (
            "unknown-strategy",
            None,
            ["--strategy", "cheapest"],
            "--strategy: unknown strategy 'cheapest'; available: auto, cloud-first, cost-optimized,"
            " local-first, performance",
        ),
        (
            "unknown-mode",
            None,
            ["--mode", "cloud"],
            "--mode: unknown mode 'cloud'; available: airgapped, burst, local-only",
        ),
    ]

    @pytest.mark.parametrize(
        ("content", "extra", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
    )
    def test_bad_task(
        self, write: Write, content: str | None, extra: list[str], expected: str
    ) -> None:
        task = write("task.yaml", GOOD_TASK if content is None else content)
        done = run("place", task, "--targets", FLEET, "--no-discovery", *extra)
        self.assert_one_line(done, expected)

    def test_binary_task_file(self, tmp_path: Path) -> None:
        task = tmp_path / "task.yaml"
        task.write_bytes(bytes(range(256)))
        self.assert_one_line(run("place", task), "task.yaml: binary file, not YAML")

    def test_duplicate_ids(self, write: Write) -> None:
        targets = write(
            "targets.yaml", "targets:\n  - {id: a, type: local}\n  - {id: a, type: ssh, host: h}\n"
        )
        done = run("place", write("task.yaml", GOOD_TASK), "--targets", targets)
        self.assert_one_line(
            done, "targets.yaml:3: targets[1].id: duplicate id 'a' (first at line 2)"
        )

    def test_missing_task_file(self, tmp_path: Path) -> None:
        self.assert_one_line(run("explain", tmp_path / "nope.yaml"), "nope.yaml: no such file")

    def test_unknown_strategy_in_settings_names_the_file(self, write: Write) -> None:
        config = write("placement.yaml", {"placement": {"strategy": "fastest"}})
        done = run("place", write("task.yaml", GOOD_TASK), "--config", config)
        self.assert_one_line(done, "placement.yaml: unknown strategy 'fastest'")

    @staticmethod
    def assert_one_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("acode-placement: error: ")
        assert expected in lines[0]
        assert done.stdout == ""


class TestPlace:
    def test_examples_main_job(self) -> None:
        done = run(
            "place",
            EXAMPLES / "tasks" / "build-ml-model.yaml",
            "--targets",
            EXAMPLES / "targets.yaml",
            "--config",
            EXAMPLES / "placement.yaml",
        )
        assert done.returncode == 0, done.stderr
        first, why = done.stdout.splitlines()[:2]
        assert first.startswith("gpu-box (ssh)  score ")
        assert why.startswith("why: highest auto score ")
        assert "\x1b[" not in done.stdout  # no colour when piped

    def test_json_is_the_contract_object(self, cli: Cli) -> None:
        code, out = cli.json(
            "place", EXAMPLES / "tasks" / "docker-build.yaml", "--targets", FLEET, "--no-discovery"
        )
        assert code == 0
        assert set(out) >= {
            "requestId",
            "success",
            "target",
            "reason",
            "score",
            "strategy",
            "mode",
            "estimatedCost",
            "decisionMs",
            "alternatives",
            "candidates",
            "failureMessage",
        }
        assert (out["target"], out["reason"]) == (
            {"id": "laptop", "type": "local"},
            "LocalPreferred",
        )
        build_box = next(c for c in out["candidates"] if c["id"] == "build-box")
        assert set(build_box) >= {"id", "type", "eligible", "score", "matches", "mismatches"}
        assert "cpu 16 >= 4" in build_box["matches"]
        assert build_box["preferences"]["met"] == ["cpu 16 >= 16", "in affinity pool=ci"]

    def test_failure_exits_1_with_counted_causes(self, cli: Cli) -> None:
        code, out, _ = cli(
            "place", EXAMPLES / "tasks" / "impossible.yaml", "--targets", FLEET, "--no-discovery"
        )
        assert code == 1
        assert out.startswith("no target (NoValidTarget): 0/14 targets eligible: ")

    def test_the_fallback_line_names_the_next_few_and_counts_the_rest(
        self, cli: Cli, write: Write
    ) -> None:
        boxes = [
            {"id": f"box-{n:02d}", "type": "ssh", "host": "h", "capabilities": {"cpu": 64 - n}}
            for n in range(12)
        ]
        targets = write("targets.yaml", {"targets": boxes})
        task = write("task.yaml", {"task": {"name": "t", "requirements": {"cpu": 2}}})
        code, out, _ = cli(
            "place", task, "--targets", targets, "--no-discovery", "--strategy", "performance"
        )
        assert code == 0
        fallback = next(line for line in out.splitlines() if line.startswith("fallback: "))
        assert fallback == "fallback: box-01, box-02, box-03, box-04, box-05 and 6 more"
        _, data = cli.json(
            "place", task, "--targets", targets, "--no-discovery", "--strategy", "performance"
        )
        assert len(data["alternatives"]) == 11  # the JSON keeps the whole ranking

    def test_tie_breaker_from_settings(self, cli: Cli, write: Write) -> None:
        targets = write(
            "t.yaml",
            {
                "targets": [
                    {"id": "zeta", "type": "ssh", "host": "z", "capabilities": {"cpu": 4}},
                    {"id": "alpha", "type": "ssh", "host": "a", "capabilities": {"cpu": 4}},
                ]
            },
        )
        task = write("task.yaml", GOOD_TASK | {"task": {"name": "t"}})
        by_id = write("p.yaml", {"placement": {"tieBreaker": "id"}})
        assert cli.json("place", task, "--targets", targets)[1]["target"]["id"] == "zeta"
        assert (
            cli.json("place", task, "--targets", targets, "--config", by_id)[1]["target"]["id"]
            == "alpha"
        )

    def test_flags_override_settings(self, cli: Cli, write: Write) -> None:
        config = write("p.yaml", {"placement": {"strategy": "performance", "mode": "local-only"}})
        task = write("task.yaml", GOOD_TASK)
        _, out = cli.json("place", task, "--targets", FLEET, "--no-discovery", "--config", config)
        assert (out["strategy"], out["mode"]) == ("performance", "local-only")
        _, out = cli.json(
            "place",
            task,
            "--targets",
            FLEET,
            "--no-discovery",
            "--config",
            config,
            "--strategy",
            "cloud-first",
            "--mode",
            "burst",
        )
        assert (out["strategy"], out["mode"], out["target"]["id"]) == (
            "cloud-first",
            "burst",
            "aws-g6f-large",
        )

    def test_targets_file_from_environment(
        self, cli: Cli, write: Write, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ACODE_PLACEMENT_TARGETS", str(FLEET))
        _, out = cli.json("place", write("task.yaml", GOOD_TASK), "--no-discovery")
        assert len(out["candidates"]) == 14

    def test_without_targets_this_machine_alone(self, cli: Cli, write: Write) -> None:
        task = write("task.yaml", {"task": {"name": "t", "requirements": {"cpu": 1}}})
        code, out = cli.json("place", task)
        assert code == 0
        assert out["target"] == {"id": "local", "type": "local"}
        assert out["reason"] == "OnlyOption"


@pytest.mark.parametrize(
    ("task", "target", "reason"),
    [
        ("build-ml-model", "gpu-box", "HighestScore"),
        ("cpu-tests", "gpu-box", "HighestScore"),
        ("docker-build", "build-box", "HighestScore"),
        ("windows-build", "win-builder", "OnlyOption"),
        ("arm64-build", "aws-m7g-2xlarge", "OnlyOption"),
        ("bf16-finetune", "gpu-box", "OnlyOption"),
        ("impossible", None, "NoValidTarget"),
    ],
)
def test_readme_examples_table(cli: Cli, task: str, target: str | None, reason: str) -> None:
    code, out = cli.json(
        "place",
        EXAMPLES / "tasks" / f"{task}.yaml",
        "--targets",
        EXAMPLES / "targets.yaml",
        "--no-discovery",
    )
    assert (code, (out["target"] or {}).get("id"), out["reason"]) == (
        0 if target else 1,
        target,
        reason,
    )


class TestExplain:
    def test_table_lists_every_target(self, cli: Cli) -> None:
        code, out, _ = cli(
            "explain",
            EXAMPLES / "tasks" / "build-ml-model.yaml",
            "--targets",
            FLEET,
            "--no-discovery",
        )
        assert code == 0
        for target in ("laptop", "gpu-box", "aws-p5-48xlarge", "aws-g6f-large"):
            assert target in out
        assert "not eligible" in out
        assert "gpu count 0.125 < 1 (a fraction of one GPU)" in out
        assert out.splitlines()[-3].startswith("gpu-box (ssh)")


class TestOtherCommands:
    def test_version_and_log_level(self, cli: Cli) -> None:
        code, out, _ = cli("--version")
        assert (code, out.strip()) == (0, "acode-placement 0.1.0")
        code, _, err = cli("--log-level", "loud", "strategies")
        assert code == 2
        assert "--log-level: unknown value 'loud'; available: debug, error, info, warning" in err

    def test_info_logs_go_to_stderr_as_json(self, write: Write) -> None:
        done = run(
            "--log-level",
            "info",
            "place",
            write("task.yaml", GOOD_TASK),
            "--targets",
            FLEET,
            "--no-discovery",
            "--json",
        )
        assert json.loads(done.stdout)["success"] is True
        event = json.loads(done.stderr.strip().splitlines()[-1])
        assert (event["event"], event["target"], event["level"]) == (
            "placement.decided",
            "laptop",
            "info",
        )

    def test_strategies(self, cli: Cli) -> None:
        code, out, _ = cli("strategies")
        assert code == 0
        for name in ("auto", "local-first", "cloud-first", "cost-optimized", "performance"):
            assert name in out
        _, data = cli.json("strategies")
        assert [s["name"] for s in data["strategies"]][:5] == [
            "auto",
            "local-first",
            "cloud-first",
            "cost-optimized",
            "performance",
        ]

    def test_targets_json_hides_key_paths(self, cli: Cli) -> None:
        code, out = cli.json("targets", "--targets", EXAMPLES / "targets.yaml", "--no-discovery")
        assert code == 0
        by_id = {t["id"]: t for t in out["targets"]}
        assert "identityFile" not in by_id["build-box"]
        assert by_id["aws-g5-xlarge"]["hourlyRate"] == 1.006
        assert by_id["gpu-box"]["capabilities"]["gpu"]["model"] == "RTX 4090"

    def test_targets_discovers_this_machine(self, cli: Cli) -> None:
        _, out = cli.json("targets")
        (local,) = out["targets"]
        assert local["capabilities"]["cpu"] >= 1
        assert local["capabilities"]["memoryGb"] > 0
        assert local["discovery"] == {"status": "fresh", "cause": None}

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
    def test_discover_json_matches_nproc_meminfo_and_df(self, cli: Cli) -> None:
        code, out = cli.json("discover")
        assert code == 0
        (local,) = out["targets"]
        caps = local["capabilities"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
        assert caps["cpu"] == int(subprocess.check_output(["nproc"], text=True, env=env))
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kib = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
        assert caps["memoryGb"] == pytest.approx(total_kib / 1024**2, abs=0.1)
        free_gib = int(subprocess.check_output(["df", "-Pk", "."], text=True).split()[10]) / 1024**2
        assert caps["diskGb"] == pytest.approx(free_gib, abs=max(1.0, free_gib * 0.02))
        assert local["status"] == "fresh" and local["sources"]["cpu"] == "discovered"
        assert out["cache"]["misses"] == 1 and out["cache"]["path"].endswith("capabilities.json")
        # A new engine (as the next command run would have) is served by the cache file.
        _, again = cli.json("discover")
        assert again["targets"][0]["status"] == "cached"
        assert again["targets"][0]["capabilities"]["cpu"] == caps["cpu"]

    @pytest.mark.parametrize("kind", ["task", "targets", "settings"])
    def test_schema_matches_the_committed_file(self, cli: Cli, kind: str) -> None:
        code, out, _ = cli("schema", kind)
        assert code == 0
        document = json.loads(out)
        committed = Path(__file__).parent.parent / "schemas" / f"{kind}.schema.json"
        assert document == json.loads(committed.read_text()), (
            f"regenerate: acode-placement schema {kind} > schemas/{kind}.schema.json"
        )

    def test_schema_describes_the_file(self, cli: Cli) -> None:
        task = json.loads(cli("schema", "task")[1])
        reqs = task["$defs"]["TaskRequirements"]["properties"]
        assert {"memoryGb", "maxRuntimeMinutes", "antiAffinity", "gpu"} <= set(reqs)
        assert task["$defs"]["TaskRequirements"]["additionalProperties"] is False
        code, _, err = cli("schema", "tasks")
        assert code == 2 and "unknown schema 'tasks'" in err


@pytest.mark.parametrize(
    "args",
    [
        ("place", EXAMPLES / "tasks" / "cpu-tests.yaml"),
        ("explain", EXAMPLES / "tasks" / "cpu-tests.yaml"),
        ("explain", EXAMPLES / "tasks" / "cpu-tests.yaml", "--json"),
        ("targets",),
        ("place", EXAMPLES / "tasks" / "impossible.yaml"),
    ],
    ids=["place", "explain", "explain-json", "targets", "no-target"],
)
def test_a_reader_that_left_is_exit_141_without_a_word(args: tuple[Any, ...]) -> None:
    """`acode-placement explain ... | head -1`: stdout's reader is gone before the
    command writes. That is neither "no valid target" (1) nor bad input (2)."""
    read, write = os.pipe()
    os.close(read)  # every write to stdout now fails with EPIPE
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "acode_placement", *map(str, args)),
                *("--targets", str(EXAMPLES / "targets.yaml"), "--no-discovery"),
            ],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def _explained(tty: bool, **env: str) -> str:
    """`explain` on the example fleet, its stdout a pipe or a pseudo-terminal."""
    command = [
        *(sys.executable, "-m", "acode_placement", "explain"),
        *(str(EXAMPLES / "tasks" / "cpu-tests.yaml"), "--targets", str(FLEET)),
        "--no-discovery",
    ]
    environ = {**os.environ, "COLUMNS": "100", **env}
    if not tty:
        return subprocess.run(
            command, capture_output=True, text=True, env=environ, timeout=60, check=False
        ).stdout
    import pty  # POSIX only, like the rest of this test

    leader, follower = pty.openpty()
    with subprocess.Popen(command, stdout=follower, stderr=subprocess.DEVNULL, env=environ) as run:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        run.wait(60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_piped_tables_are_one_row_per_line_with_nothing_trailing() -> None:
    out = _explained(tty=False)
    lines = out.splitlines()
    assert "\x1b" not in out
    assert all(line == line.rstrip() for line in lines)
    ranks = [line.split()[0] for line in lines if line.split()]
    rows = [rank for rank in ranks if rank == "-" or rank.isdigit()]
    assert len(rows) == 14  # every target of the fleet on its own line, unwrapped
    assert len(lines) == 1 + 14 + 3  # the header, the rows, the choice with why and fallback


def test_no_color_on_a_terminal_means_no_escapes_at_all() -> None:
    assert "\x1b[" in _explained(tty=True)  # bold headers on a terminal
    assert "\x1b[" not in _explained(tty=True, NO_COLOR="1")


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("acode-placement pl", ["place"]),
        ("acode-placement his", ["history"]),
        ("acode-placement place t.yaml --strategy c", ["cost-optimized", "cloud-first"]),
        ("acode-placement place t.yaml --strategy per", ["performance"]),
        ("acode-placement explain t.yaml --mode a", ["airgapped"]),
    ],
)
def test_the_shell_completes_commands_strategies_and_modes(words: str, expected: list[str]) -> None:
    """What bash's completion function asks (`--install-completion` installs it)."""
    env = {
        **os.environ,
        "_ACODE_PLACEMENT_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    done = subprocess.run(
        [sys.executable, "-m", "acode_placement"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.split()) == sorted(expected)


def test_completion_is_offered_for_the_shell(cli: Cli) -> None:
    code, out, _ = cli("--help")
    assert code == 0 and "--install-completion" in out and "--show-completion" in out


def test_help_says_where_files_are_looked_for(tmp_path: Path) -> None:
    home = tmp_path / "config"
    done = subprocess.run(
        [sys.executable, "-m", "acode_placement", "place", "--help"],
        env={**os.environ, "XDG_CONFIG_HOME": str(home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    joined = "".join(done.stdout.split())  # help wraps long paths anywhere
    folder = "".join(str(home / "acode-placement").split())
    assert f"{folder}/targets.yaml" in joined and f"{folder}/placement.yaml" in joined
    assert "$ACODE_PLACEMENT_TARGETS" in joined and "cost-optimized" in joined


def test_a_misspelt_variable_is_said_and_ignored() -> None:
    env = {**os.environ, "ACODE_PLACEMENT_STRATEGYY": "performance", "ACODE_PLACEMENT__X": "1"}
    done = subprocess.run(
        [
            *(sys.executable, "-m", "acode_placement", "place"),
            *(str(EXAMPLES / "tasks" / "cpu-tests.yaml"), "--targets", str(FLEET)),
            *("--no-discovery", "--json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["strategy"] == "auto"
    said = (
        "environment ACODE_PLACEMENT_STRATEGYY: no setting or file has this name, so it is"
        " ignored; did you mean ACODE_PLACEMENT_STRATEGY?"
    )
    # under --json a warning is a JSON object too, one line
    assert [json.loads(line) for line in done.stderr.splitlines()] == [{"warning": said}]
    done = subprocess.run(
        [
            *(sys.executable, "-m", "acode_placement", "place"),
            *(str(EXAMPLES / "tasks" / "cpu-tests.yaml"), "--targets", str(FLEET)),
            "--no-discovery",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stderr.splitlines() == [f"acode-placement: warning: {said}"]


@pytest.mark.parametrize(
    ("given", "seen"),
    [
        (
            ["place", "t.yaml", "--metrics-file", "m.prom"],
            ["--metrics-file", "m.prom", "place", "t.yaml"],
        ),
        (["--log-level", "info", "place", "t.yaml"], ["--log-level", "info", "place", "t.yaml"]),
        (
            ["history", "show", "x", "--log-format=json"],
            ["--log-format=json", "history", "show", "x"],
        ),
        (["place", "--", "--log-level"], ["place", "--", "--log-level"]),
    ],
)
def test_the_programs_own_options_go_before_the_command(given: list[str], seen: list[str]) -> None:
    from acode_placement.cli import globals_first

    assert globals_first(given) == seen


def test_a_global_option_after_the_command_works(tmp_path: Path) -> None:
    prom = tmp_path / "m.prom"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "acode_placement", "place"),
            *(str(EXAMPLES / "tasks" / "cpu-tests.yaml"), "--targets", str(FLEET)),
            *("--no-discovery", "--metrics-file", str(prom)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "acode_placement_placements_total" in prom.read_text()


def test_config_shows_what_is_in_use_and_where_it_came_from(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tmp_path / "placement.yaml"
    settings.write_text(
        "placement:\n"
        "  strategy: cost-optimized\n"
        "  history: postgresql+psycopg://ci:hunter2-secret@db.internal/placements\n"
    )
    monkeypatch.setenv("ACODE_PLACEMENT_MODE", "local-only")
    monkeypatch.setenv("ACODE_PLACEMENT_TOKEN", "a-token-that-must-never-show-1234")
    code, out = cli.json("config", "--config", settings, "--targets", FLEET)
    assert code == 0
    where = {row["name"]: (row["value"], row["from"]) for row in out["settings"]}
    assert where["strategy"] == ("cost-optimized", f"{settings}:2")
    assert where["mode"] == ("local-only", "environment ACODE_PLACEMENT_MODE")
    assert where["tieBreaker"] == ("first", "default")
    assert out["files"]["settings"] == {"path": str(settings), "from": "option"}
    assert out["files"]["targets"] == {"path": str(FLEET), "from": "option"}
    assert out["files"]["token"]["path"] == "set (not shown)"
    code, text, _ = cli("config", "--config", settings)
    for shown in (json.dumps(out), text):
        assert "hunter2-secret" not in shown and "a-token-that-must-never-show" not in shown
    assert "db.internal" in text and "environment ACODE_PLACEMENT_MODE" in text


@pytest.mark.parametrize("command", ["place", "explain"])
def test_under_json_bad_input_is_one_json_line_on_stderr(
    cli: Cli, write: Write, command: str
) -> None:
    task = write("task.yaml", {"task": {"name": "t", "requirements": {"cpu": "many"}}})
    code, out, err = cli(command, task, "--json")
    assert (code, out) == (2, "")
    (line,) = err.strip().splitlines()
    error = json.loads(line)
    assert error["exitStatus"] == 2
    assert error["error"].startswith(f"{task}:4: requirements.cpu: ")
    _, _, prose = cli(command, task)  # the same message as without --json
    assert prose.strip() == f"acode-placement: error: {error['error']}"


@pytest.mark.parametrize(
    "argv",
    [
        ["place", "--no-such-option", "x.yaml", "--json"],  # a usage error
        ["targets", "--targets", "/nonexistent/targets.yaml", "--json"],
        ["history", "--since", "forever", "--json"],
    ],
)
def test_under_json_every_error_is_json(cli: Cli, argv: list[str]) -> None:
    code, out, err = cli(*argv)
    assert (code, out) == (2, "")
    (line,) = err.strip().splitlines()
    error = json.loads(line)
    assert error["exitStatus"] == 2 and error["error"]
    assert not error["error"].startswith("acode-placement: error")


def on_a_terminal(home: Path, *args: str | Path) -> tuple[int, str, str]:
    """The console script with stderr on a pseudo-terminal (stdout piped): exit
    status, stdout, and what the terminal showed."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [str(SCRIPT), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=slave,
        env=environment(home),
        cwd=home,
    )
    os.close(slave)
    shown = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        shown.append(chunk)
    os.close(master)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    return process.wait(timeout=60), out, b"".join(shown).decode(errors="replace")


def test_progress_shows_on_a_terminal_only(tmp_path: Path, write: Write) -> None:
    # 30 SSH hosts on ports where nothing listens: each probe is refused at once
    fleet = [
        {"id": f"h{i}", "type": "ssh", "host": "127.0.0.1", "port": free_port()} for i in range(30)
    ]
    targets = write("targets.yaml", {"targets": fleet})
    code, out, shown = on_a_terminal(tmp_path, "discover", "--targets", targets)
    assert code == 0 and len(out.splitlines()) == 31  # the table, never the bar
    assert "probing" in shown and "/30" in shown
    piped = hostile.run(tmp_path, "discover", "--refresh", "--targets", targets)
    assert piped.code == 0 and piped.err == ""  # not a terminal: no progress at all
    code, out, shown = on_a_terminal(tmp_path, "bench", "--sizes", "10,20", "--runs", "3")
    assert code == 0 and "bench: 10 targets" in shown and "bench: 20 targets" in shown
    assert "bench" not in out.splitlines()[0]


class TestInit:
    def test_init_writes_this_machine_and_place_uses_the_file(self, tmp_path: Path) -> None:
        written = tmp_path / "targets.yaml"
        ran = hostile.run(tmp_path, "init", "--targets", written)
        assert ran.code == 0, ran.err
        assert f"wrote {written}:" in ran.out
        (local,) = load_targets(written)
        assert local.capabilities is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMP_")}
        assert local.capabilities.cpu == int(subprocess.check_output(["nproc"], env=env))
        text = written.read_text()
        for example in ("# - id: build-box", "# - id: aws-gpu", "#   identityFile:"):
            assert example in text
        task = tmp_path / "task.yaml"
        task.write_text("task:\n  name: t\n  requirements: {cpu: 1}\n")
        placed = hostile.run(tmp_path, "place", task, "--targets", written)
        assert placed.code == 0 and placed.out.startswith("local (local)"), placed.err

    def test_init_never_replaces_a_file_unless_told(self, tmp_path: Path) -> None:
        written = tmp_path / "targets.yaml"
        written.write_text("mine\n")
        ran = hostile.run(tmp_path, "init", "--targets", written)
        hostile.assert_refused(ran, f"{written}: already exists; give --force")
        assert written.read_text() == "mine\n"
        assert hostile.run(tmp_path, "init", "--targets", written, "--force").code == 0
        assert load_targets(written)[0].id == "local"

    @pytest.mark.parametrize(
        "spec",
        ["-oProxyCommand=touch /tmp/pwned", "ci;touch x@host", "host:99999", "a b", "@", ""],
    )
    def test_a_bad_ssh_host_is_refused_and_nothing_written(self, tmp_path: Path, spec: str) -> None:
        written = tmp_path / "targets.yaml"
        ran = hostile.run(tmp_path, "init", "--targets", written, "--ssh", spec)
        hostile.assert_refused(ran, "--ssh")
        assert not written.exists()

    def test_what_a_machine_says_is_written_as_data(
        self, tmp_path: Path, stand_in: Callable[[str, str], Path]
    ) -> None:
        # a quote, a comment sign, a key-like colon, an escape sequence, a list item
        stand_in("nvidia-smi", "printf '0, A100 #: x\\047 \\033[2J - id: evil, 40960, 535.1\\n'")
        written = tmp_path / "targets.yaml"
        ran = hostile.run(tmp_path, "init", "--targets", written)
        assert ran.code == 0, ran.err
        hostile.assert_sane(ran)
        (local,) = load_targets(written)  # one target: nothing the machine said became YAML
        assert local.capabilities is not None and local.capabilities.gpu is not None
        assert local.capabilities.gpu.model == "A100 #: x' \x1b[2J - id: evil"


def test_config_check_says_whether_the_database_answers_and_each_host(
    tmp_path: Path, write: Write
) -> None:
    port = free_port()  # nothing listens: refused
    targets = write("targets.yaml", {"targets": [{"id": "h", "type": "ssh", "host": "127.0.0.1",
                                                  "port": port}]})  # fmt: skip
    good = write("good.yaml", {"placement": {"history": f"sqlite:///{tmp_path / 'h.db'}"}})
    ran = hostile.run(
        tmp_path, "config", "--check", "--targets", targets, "--config", good, "--json"
    )
    assert ran.code == 0, ran.err
    assert json.loads(ran.out)["checks"] == {
        "history": {"status": "ok", "detail": "0 decisions"},
        "sshHosts": [
            {
                "id": "h",
                "where": f"127.0.0.1:{port}",
                "status": "unreachable",
                "cause": f"127.0.0.1:{port}: connection refused",
            }
        ],
    }
    (tmp_path / "dir.db").mkdir()  # a directory where the database file should be
    bad = write("bad.yaml", {"placement": {"history": f"sqlite:///{tmp_path / 'dir.db'}"}})
    ran = hostile.run(tmp_path, "config", "--check", "--targets", targets, "--config", bad)
    assert ran.code == 0, ran.err
    (row,) = [line for line in ran.out.splitlines() if line.split()[:1] == ["history"]][-1:]
    assert row.split()[1] == "failed" and "dir.db" in row, ran.out
    assert f"ssh h (127.0.0.1:{port})" in ran.out


def test_json_says_whether_history_show_will_find_the_request(tmp_path: Path) -> None:
    task = EXAMPLES / "tasks" / "cpu-tests.yaml"
    argv = ("--targets", FLEET, "--no-discovery", "--json")
    placed = json.loads(hostile.run(tmp_path, "place", task, *argv).out)
    explained = json.loads(hostile.run(tmp_path, "explain", task, *argv).out)
    assert (placed["recorded"], explained["recorded"]) == (True, False)
    assert hostile.run(tmp_path, "history", "show", placed["requestId"]).code == 0
    assert hostile.run(tmp_path, "history", "show", explained["requestId"]).code == 2
