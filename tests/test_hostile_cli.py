"""Hostile command lines and hostile text on the terminal, through the real console
script: usage errors are one line and exit 2; names, owners, labels, custom keys and
GPU models an attacker chose are printed literally by every command that shows them."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from tests.conftest import FLEET
from tests.hostile import Ran, assert_refused, assert_sane, run

GOOD_TASK = "task:\n  name: ok\n  requirements: {cpu: 1}\n"


@pytest.fixture
def task(tmp_path: Path) -> Path:
    path = tmp_path / "task.yaml"
    path.write_text(GOOD_TASK)
    return path


# (arguments, words the one line must hold); "{task}" is a good task file.
USAGE: dict[str, tuple[list[str], str]] = {
    "unknown-command": (["bogus"], "No such command"),
    "missing-argument": (["place"], "Missing argument"),
    "unknown-option": (["place", "{task}", "--bogus"], "No such option"),
    "option-after-value": (["place", "{task}", "--strategy"], "requires an argument"),
    "limit-float": (["history", "--limit", "1e30"], "--limit"),
    "limit-zero": (["history", "--limit", "0"], "--limit"),
    "limit-negative": (["history", "--limit", "-1"], "--limit"),
    "limit-huge": (["history", "--limit", "99999999999999999999"], "--limit"),
    "since-far": (["history", "--since", "99999999999d"], "--since"),
    "since-garbage": (["history", "--since", "garbage"], "--since"),
    "since-exponent": (["history", "--since", "1e400d"], "--since"),
    "since-escape": (["history", "--since", "\x1b[2J"], "--since"),
    "strategy-markup": (["place", "{task}", "--strategy", "[/]\x1b[31m"], "unknown strategy"),
    "mode": (["place", "{task}", "--mode", "everywhere"], "unknown mode"),
    "log-level": (["--log-level", "trace", "strategies"], "--log-level"),
    "log-format": (["--log-format", "xml", "strategies"], "--log-format"),
    "schema": (["schema", "[/]"], "unknown schema"),
    "discover-unknown-id": (["discover", "[/]\x1b", "--targets", str(FLEET)], "unknown target"),
    "history-show-unknown": (["history", "show", "nothing"], "no recorded decision"),
    "history-replay-unknown": (["history", "replay", "%"], "no recorded decision"),
    "release-percent": (["release", "%"], "no reservation"),
    "release-escape": (["release", "\x1b[2J"], "no reservation"),
    # bytes that are not UTF-8 (Python makes lone surrogates of them): looked up as data
    "history-show-undecodable": (["history", "show", "\udcff"], "no recorded decision"),
    "history-replay-undecodable": (["history", "replay", "ab\udc80"], "no recorded decision"),
    "release-undecodable": (["release", "\udcff"], "no reservation"),
    # the leases are opened before the task is read: nothing may be printed at exit
    "reserve-missing-task": (["place", "/nonexistent/task.yaml", "--reserve"], "no such file"),
    "serve-port-zero": (["serve", "--port", "0"], "--port"),
    "serve-port-huge": (["serve", "--port", "70000"], "--port"),
    "serve-beyond-loopback": (["serve", "--host", "0.0.0.0"], "refusing to serve"),
    "serve-workers-zero": (["serve", "--workers", "0"], "--workers"),
    "serve-workers-huge": (["serve", "--workers", "65"], "--workers"),
    "serve-workers-word": (["serve", "--workers", "many"], "--workers"),
    "serve-pin-cpus-value": (["serve", "--pin-cpus=yes"], "does not take a value"),
    "bench-sizes-word": (["bench", "--sizes", "abc"], "--sizes"),
    "bench-sizes-zero": (["bench", "--sizes", "0"], "--sizes"),
    "bench-sizes-negative": (["bench", "--sizes", "-5"], "--sizes"),
    "bench-sizes-huge": (["bench", "--sizes", "1000000000"], "--sizes"),
    "bench-runs-zero": (["bench", "--runs", "0"], "--runs"),
    "bench-runs-word": (["bench", "--runs", "many"], "--runs"),
    "bench-unknown": (["bench", "--bogus"], "No such option: --bogus"),
    "server-not-a-url": (["place", "{task}", "--server", "not a url"], "--server"),
    "server-ftp": (["place", "{task}", "--server", "ftp://127.0.0.1/"], "--server"),
    "server-refused": (["place", "{task}", "--server", "http://127.0.0.1:1"], "cannot reach"),
    "server-with-password": (
        ["place", "{task}", "--server", "http://topsecretuser:hunter2@127.0.0.1:1"],
        "cannot reach",
    ),
    "targets-directory": (["targets", "--targets", "/"], "is a directory"),
    "config-dev-zero": (["targets", "--config", "/dev/zero"], "not a regular file"),
}


@pytest.mark.parametrize(("args", "mention"), USAGE.values(), ids=USAGE.keys())
def test_usage_errors_are_one_line(
    tmp_path: Path, task: Path, args: list[str], mention: str
) -> None:
    argv = [str(task) if a == "{task}" else a for a in args]
    assert mention in assert_refused(run(tmp_path, *argv, timeout=30))


def token_file(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "token"
    path.write_bytes(content)
    return path


TOKENS = {
    "empty": (b"", "empty"),
    "binary": (b"\x00\xff\xfe\x01" * 10, "not UTF-8"),
    "short": (b"abc\n", "16 to 4096 visible ASCII"),
    "non-ascii": ("correct-horse-battery-st\u00e4ple\n".encode(), "visible ASCII"),
    "space-inside": (b"correct horse battery staple\n", "visible ASCII"),
    "escape-inside": (b"correct-horse\x1b[31m-battery-staple\n", "visible ASCII"),
}


@pytest.mark.parametrize(("content", "mention"), TOKENS.values(), ids=TOKENS.keys())
def test_bad_token_files(tmp_path: Path, content: bytes, mention: str) -> None:
    path = token_file(tmp_path, content)
    line = assert_refused(run(tmp_path, "serve", "--token-file", path, timeout=30), mention)
    assert content.decode(errors="ignore").strip() not in line or not content.strip()


@pytest.mark.parametrize(
    "path", ["/dev/zero", "/nonexistent/token", "{dir}"], ids=["dev-zero", "missing", "directory"]
)
def test_token_files_that_are_not_files(tmp_path: Path, path: str) -> None:
    where = str(tmp_path) if path == "{dir}" else path
    assert "--token-file" in assert_refused(run(tmp_path, "serve", "--token-file", where))


@pytest.mark.parametrize(
    "value",
    ["hunter2-hunter2-hunter2\n-x", "hunter2-hunter2-h\u00e4nter2", "hunter2 hunter2 hunter2"],
    ids=["newline", "non-ascii", "space"],
)
@pytest.mark.parametrize("command", ["serve", "place"])
def test_a_bad_token_in_the_environment_is_never_echoed(
    tmp_path: Path, task: Path, value: str, command: str
) -> None:
    argv = ["serve"] if command == "serve" else ["place", task, "--server", "http://127.0.0.1:1"]
    line = assert_refused(run(tmp_path, *argv, ACODE_PLACEMENT_TOKEN=value, timeout=30))
    assert "ACODE_PLACEMENT_TOKEN" in line and "hunter2" not in line


def test_history_show_matches_its_prefix_literally(tmp_path: Path, task: Path) -> None:
    placed = run(tmp_path, "place", task, "--targets", FLEET, "--no-discovery", "--json")
    assert placed.code == 0, placed.err
    request_id = json.loads(placed.out)["requestId"]
    for wildcard in ("%", "_", request_id[:4] + "%", "_" * 8):
        assert "no recorded decision" in assert_refused(run(tmp_path, "history", "show", wildcard))
    shown = run(tmp_path, "history", "show", request_id[:8])
    assert shown.code == 0 and request_id in shown.out


def test_undecodable_names_are_data(tmp_path: Path, task: Path) -> None:
    """An owner or a target id from bytes that are not UTF-8: the lease and the record
    are kept (the owner escaped), and a filter matches nothing."""
    placed = run(
        tmp_path, "place", task, "--targets", FLEET, "--no-discovery", "--json",
        "--reserve", "--owner", "me\udcff",
    )  # fmt: skip
    assert_sane(placed)
    assert placed.code == 0, placed.err
    held = run(tmp_path, "reservations", "--json")
    assert_sane(held)
    assert [lease["owner"] for lease in json.loads(held.out)["reservations"]] == ["me\\udcff"]
    listed = run(tmp_path, "history", "--target", "\udcff", "--json")
    assert_sane(listed)
    assert listed.code == 0 and json.loads(listed.out)["decisions"] == []


def test_a_metrics_file_that_cannot_be_written_is_a_warning(tmp_path: Path, task: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    ran = run(
        tmp_path, "--metrics-file", blocker / "m.prom", "place", task,
        "--targets", FLEET, "--no-discovery",
    )  # fmt: skip
    assert_sane(ran)
    assert ran.code == 0 and "warning: --metrics-file" in ran.err


# ------------------------------------------------------------------ text on the terminal

EVIL = "evil [/] [link=http://x]click[/link] [bold]b \x1b[31mred\r\u202eevil\x9b :smile:"
SHOWN = "evil [/] [link=http://x]click[/link] [bold]b \\x1b[31mred\\r\\u202eevil\\x9b :smile:"


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path]:
    """A task and a fleet whose every free-text field is an attack on the terminal."""
    task = tmp_path / "task.yaml"
    task.write_text(
        yaml.safe_dump(
            {
                "task": {
                    "name": EVIL,
                    "description": EVIL,
                    "requirements": {"cpu": 1, "custom": {EVIL: EVIL}},
                }
            }
        )
    )
    fleet = tmp_path / "fleet.yaml"
    capabilities = {
        "cpu": 8,
        "memoryGb": 16,
        "gpu": {"type": "nvidia", "model": EVIL, "vramGb": 24},
        "custom": {EVIL: EVIL},
        "os": "linux",
    }
    box = {"id": "box", "type": "ssh", "host": "box.invalid", "capabilities": capabilities}
    fleet.write_text(yaml.safe_dump({"targets": [{**box, "labels": {EVIL: EVIL}}]}))
    return task, fleet


def wide(home: Path, *args: str | Path, timeout: float = 60) -> Ran:
    """A run whose tables are wide enough to hold EVIL on one line."""
    return run(home, *args, timeout=timeout, COLUMNS="3000")


def literal(ran_out: str) -> None:
    assert SHOWN in ran_out, ran_out[-1500:]


@pytest.mark.parametrize("command", ["place", "explain"])
def test_decisions_print_names_literally(hostile: tuple[Path, Path], command: str) -> None:
    task, fleet = hostile
    ran = wide(task.parent, command, task, "--targets", fleet, "--no-discovery")
    assert_sane(ran)
    assert ran.code == 0, ran.err
    if command == "explain":
        literal(ran.out)  # the GPU model, in the table


def test_targets_and_discover_print_labels_and_models_literally(
    hostile: tuple[Path, Path],
) -> None:
    task, fleet = hostile
    commands: list[list[str | Path]] = [
        ["targets", "--targets", fleet, "--no-discovery"],
        ["discover", "--targets", fleet],
    ]
    for argv in commands:
        ran = wide(task.parent, *argv, timeout=60)
        assert_sane(ran)
        assert ran.code == 0, ran.err
        literal(ran.out)


def test_history_and_reservations_print_what_was_recorded_literally(
    hostile: tuple[Path, Path],
) -> None:
    task, fleet = hostile
    home = task.parent
    placed = wide(
        home, "place", task, "--targets", fleet, "--no-discovery", "--reserve", "--owner", EVIL
    )
    assert_sane(placed)
    assert placed.code == 0, placed.err
    listing = wide(home, "history")
    assert_sane(listing)
    literal(listing.out)  # the task name, recorded as given
    (request_id,) = [json.loads(wide(home, "history", "--json").out)["decisions"][0]["requestId"]]
    shown = wide(home, "history", "show", request_id)
    assert_sane(shown)
    literal(shown.out)
    leases = wide(home, "reservations")
    assert_sane(leases)
    literal(leases.out)  # owner and task name
    as_json = json.loads(wide(home, "reservations", "--json").out)["reservations"]
    assert as_json[0]["owner"] == EVIL  # JSON keeps the value itself, escaped by JSON


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_logs_escape_what_they_quote(hostile: tuple[Path, Path], log_format: str) -> None:
    task, fleet = hostile
    ran = wide(
        task.parent, "--log-level", "debug", "--log-format", log_format, "place", task,
        "--targets", fleet, "--no-discovery",
    )  # fmt: skip
    assert_sane(ran)
    assert ran.code == 0


class _Nonsense(BaseHTTPRequestHandler):
    """A server that answers every request with what the path names."""

    answers: ClassVar[dict[str, tuple[int, str, bytes]]] = {
        "/html/v1/placements": (200, "text/html", b"<html>\x1b[2Jhello</html>"),
        "/empty-json/v1/placements": (200, "application/json", b"{}"),
        "/list/v1/placements": (200, "application/json", b"[1, 2]"),
        "/wrong-types/v1/placements": (
            200,
            "application/json",
            b'{"target": 5, "score": "x", "success": true}',
        ),
        "/error-html/v1/placements": (500, "text/html", b"<h1>\x1b]8;;x\x07boom</h1>"),
        "/no-target/v1/placements": (
            200,
            "application/json",
            b'{"success": false, "target": null, "score": 0, "strategy": "auto", "mode": "burst",'
            b' "estimatedCost": null, "reason": "NoValidTarget", "why": "0/1 [/]\\u001b eligible",'
            b' "alternatives": []}',
        ),
        "/error-problem/v1/placements": (
            503,
            "application/problem+json",
            b'{"detail": {"nested": "hunter2"}}',
        ),
    }

    def do_POST(self) -> None:
        status, kind, body = self.answers.get(self.path, (404, "text/plain", b"?"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def nonsense() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Nonsense)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("path", [p.removesuffix("/v1/placements") for p in _Nonsense.answers])
@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_a_server_answering_nonsense(
    tmp_path: Path, task: Path, nonsense: str, path: str, json_out: bool
) -> None:
    argv: list[str | Path] = ["place", task, "--server", nonsense + path]
    ran = run(tmp_path, *argv, *(["--json"] if json_out else []), timeout=30)
    assert_sane(ran)
    if path == "/no-target":  # a real answer: no target, exit 1, printed literally
        assert ran.code == 1 and ("\\x1b" in ran.out if not json_out else "\\u001b" in ran.out)
    else:
        assert_refused(ran, as_json=json_out)


def test_serve_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = run(tmp_path, "serve", "--port", str(port), timeout=30)
    assert "cannot listen: address already in use" in assert_refused(ran)


def test_serve_on_a_host_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    ran = run(
        tmp_path, "serve", "--host", "no-such-host.invalid", timeout=30,
        ACODE_PLACEMENT_TOKEN="correct-horse-battery-staple",
    )  # fmt: skip
    assert "--host no-such-host.invalid" in assert_refused(ran, "cannot listen")
