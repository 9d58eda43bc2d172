"""The HTTP service, served for real on a free loopback port and called with httpx:
every route, authentication, bad bodies, schemathesis over the served OpenAPI
document, the client, place --server, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from acode_placement import Capabilities, LocalTarget, SshTarget, Task
from acode_placement.client import PlacementClient, ServiceError
from acode_placement.engine import PlacementEngine
from acode_placement.history.reservations import ReservationStore
from acode_placement.history.store import HistoryStore
from acode_placement.models import PlacementOptions
from acode_placement.service import create_app
from acode_placement.web import ascii_json
from tests.conftest import Cli
from tests.serving import wait_until_up
from tests.sshd import free_port

ROOT = Path(__file__).parent.parent
TOKEN = "correct-horse-battery-staple"
FLEET = [
    LocalTarget(id="local", capabilities=Capabilities(cpu=4, memory_gb=8, os="linux")),
    SshTarget(
        id="box",
        host="box.invalid",
        identity_file="/home/ci/.ssh/id_ed25519",
        capabilities=Capabilities(cpu=16, memory_gb=64, os="linux", tools=("docker",)),
    ),
]
TASK = {"name": "build", "requirements": {"cpu": 2, "memoryGb": 4}}
OFF = {"discoveryEnabled": False}


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, PlacementEngine]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('service') / 'history.db'}"
    engine = PlacementEngine(history=HistoryStore(url), reservations=ReservationStore(url))
    app = create_app(engine, FLEET, TOKEN, defaults=PlacementOptions(discovery_enabled=False))
    with serving(app) as base:
        yield base, engine


@pytest.fixture
def api(service: tuple[str, PlacementEngine]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=service[0], headers=headers, timeout=30) as client:
        yield client


class TestRoutes:
    def test_health_needs_no_token(self, service: tuple[str, PlacementEngine]) -> None:
        assert httpx.get(f"{service[0]}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{service[0]}/readyz").json() == {"status": "ready"}

    def test_place_explain_and_history(self, api: httpx.Client) -> None:
        placed = api.post("/v1/placements", json={"task": TASK, "options": OFF})
        assert placed.status_code == 200
        body = placed.json()
        assert (body["success"], body["target"], body["reason"]) == (
            True,
            {"id": "local", "type": "local"},
            "LocalPreferred",
        )
        explained = api.post("/v1/placements:explain", json={"requirements": {"cpu": 8}})
        assert [c["id"] for c in explained.json()["candidates"]] == ["box", "local"]
        listed = api.get("/v1/placements", params={"limit": 5}).json()
        assert listed[0]["requestId"] == body["requestId"]  # explain records nothing
        one = api.get(f"/v1/placements/{body['requestId']}").json()
        assert one["result"]["why"] == body["why"] and one["requirements"]["cpu"] == 2

    def test_an_answer_without_candidates_says_the_rest_the_same(self, api: httpx.Client) -> None:
        """`candidates: false` leaves out every target's checks and nothing else; the
        decision is recorded whole, so `history show` still explains every target."""
        for requirements in ({"cpu": 1}, {"cpu": 999}):
            full = api.post(
                "/v1/placements:explain", json={"requirements": requirements, "options": OFF}
            ).json()
            lean = api.post(
                "/v1/placements",
                json={"requirements": requirements, "options": OFF, "candidates": False},
            ).json()
            assert "candidates" not in lean and full["candidates"]
            differ = {"requestId", "decisionMs", "candidates"}
            assert {k: v for k, v in full.items() if k not in differ} == {
                k: v for k, v in lean.items() if k not in differ
            }
            shown = api.get(f"/v1/placements/{lean['requestId']}").json()["result"]
            assert shown["candidates"] == full["candidates"]
        refused = api.post("/v1/placements", json={"requirements": {}, "candidates": "maybe"})
        assert refused.status_code == 422 and "candidates" in refused.json()["detail"]

    def test_a_failure_is_a_200_with_success_false(self, api: httpx.Client) -> None:
        response = api.post("/v1/placements", json={"requirements": {"cpu": 999}})
        assert response.status_code == 200
        assert response.json()["success"] is False
        assert response.json()["failureMessage"].startswith("0/2 targets eligible")

    def test_reserve_list_and_release(self, api: httpx.Client) -> None:
        placed = api.post("/v1/placements", json={"task": TASK, "reserve": True, "owner": "w1"})
        lease = placed.json()["reservation"]
        assert (lease["target"], lease["owner"]) == ("local", "w1")
        assert [r["id"] for r in api.get("/v1/reservations").json()] == [lease["id"]]
        assert api.delete(f"/v1/reservations/{lease['id']}").json()["endReason"] == "released"
        assert api.delete(f"/v1/reservations/{lease['id']}").status_code == 200
        missing = api.delete("/v1/reservations/nope")
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no reservation 'nope'"

    def test_targets_never_show_key_paths(self, api: httpx.Client) -> None:
        targets = api.get("/v1/targets").json()
        assert [t["id"] for t in targets] == ["local", "box"]
        assert all("identityFile" not in t for t in targets)
        assert "id_ed25519" not in api.get("/v1/targets").text
        found = api.post("/v1/targets:discover", json={"ids": ["box"]}).json()
        assert [t["id"] for t in found] == ["box"]

    def test_strategies_metrics_and_openapi(self, api: httpx.Client) -> None:
        names = [s["name"] for s in api.get("/v1/strategies").json()["strategies"]]
        assert names[:5] == ["auto", "local-first", "cloud-first", "cost-optimized", "performance"]
        metrics = api.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        families = {f.name for f in text_string_to_metric_families(metrics.text)}
        assert "acode_placement_placements" in families
        document = api.get("/openapi.json").json()
        assert "/v1/placements" in document["paths"]


class TestRefusals:
    @pytest.mark.parametrize("header", [None, "Bearer wrong", "Bearer", "Basic " + TOKEN])
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/v1/placements"),
            ("POST", "/v1/placements:explain"),
            ("GET", "/v1/placements"),
            ("GET", "/v1/placements/x"),
            ("GET", "/v1/reservations"),
            ("DELETE", "/v1/reservations/x"),
            ("GET", "/v1/targets"),
            ("POST", "/v1/targets:discover"),
            ("GET", "/v1/strategies"),
            ("GET", "/metrics"),
        ],
    )
    def test_every_route_needs_the_token(
        self, service: tuple[str, PlacementEngine], method: str, path: str, header: str | None
    ) -> None:
        headers = {"Authorization": header} if header else {}
        response = httpx.request(method, service[0] + path, headers=headers, json={})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize(
        ("body", "status", "detail"),
        [
            (
                {"task": {"name": "x", "requirements": {"memroyGb": 3}}},
                422,
                "requirements.memroyGb: unknown key; did you mean memoryGb?",
            ),
            ({"requirements": {"cpu": -1}}, 422, "requirements.cpu: must be >= 0, got -1"),
            ({"requirements": {"tools": ["rm -rf /"]}}, 422, "invalid tool name 'rm -rf /'"),
            ({"options": {"strategy": "cheap"}}, 400, "unknown strategy 'cheap'; available: auto"),
            ({"colour": "red"}, 422, "colour: unknown key"),
            ([1, 2], 422, "body: expected a JSON object"),
        ],
    )
    def test_bad_bodies_are_4xx_with_the_command_lines_words(
        self, api: httpx.Client, body: Any, status: int, detail: str
    ) -> None:
        response = api.post("/v1/placements", json=body)
        assert response.status_code == status
        assert detail in response.json()["detail"]

    def test_malformed_and_oversized_bodies(self, api: httpx.Client) -> None:
        broken = api.post(
            "/v1/placements", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 422 and "invalid JSON" in broken.json()["detail"]
        huge = api.post(
            "/v1/placements",
            content=b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}',
            headers={"Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        assert huge.json()["detail"] == "request body over 1048576 bytes"

    def test_unknown_history_entry_is_404(self, api: httpx.Client) -> None:
        response = api.get("/v1/placements/does-not-exist")
        assert response.status_code == 404 and response.json()["title"] == "Not Found"


def test_schemathesis_finds_no_server_error(tmp_path: Path) -> None:
    # Its own server: fuzzed requests reserve and record at random.
    url = f"sqlite:///{tmp_path / 'history.db'}"
    engine = PlacementEngine(history=HistoryStore(url), reservations=ReservationStore(url))
    app = create_app(engine, FLEET, TOKEN, defaults=PlacementOptions(discovery_enabled=False))
    with serving(app) as base:
        done = _schemathesis(base)
    assert done.returncode == 0, done.stdout[-4000:]


def _schemathesis(base: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{base}/openapi.json",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance",
            "--max-examples",
            "25",
            "--phases",
            "examples,fuzzing",
            "--suppress-health-check",
            "all",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


class TestClient:
    def test_the_python_client_speaks_the_same_json(
        self, service: tuple[str, PlacementEngine]
    ) -> None:
        with PlacementClient(service[0], TOKEN) as client:
            result = client.place(Task.model_validate(TASK), reserve=True)
            lease = result["reservation"]
            assert result["success"] and lease["target"] == result["target"]["id"]
            assert lease["id"] in [r["id"] for r in client.reservations()]
            client.release(lease["id"])
            assert lease["id"] not in [r["id"] for r in client.reservations()]
            with pytest.raises(ServiceError, match=r"no reservation 'x' \(HTTP 404\)"):
                client.release("x")
        with (
            PlacementClient(service[0], "wrong") as client,
            pytest.raises(ServiceError, match="HTTP 401"),
        ):
            client.strategies()

    @pytest.fixture
    def task(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """TASK as a task file, with the service's token where `place --server` reads it."""
        monkeypatch.setenv("ACODE_PLACEMENT_TOKEN", TOKEN)
        path = tmp_path / "task.yaml"
        path.write_text(yaml.safe_dump({"task": TASK}))
        return path

    def test_place_with_server(
        self, service: tuple[str, PlacementEngine], cli: Cli, task: Path
    ) -> None:
        code, out = cli.json("place", task, "--server", service[0])
        assert code == 0 and out["target"]["id"] == "local" and out["taskName"] == "build"
        code, text, _ = cli("place", task, "--server", service[0], "--strategy", "performance")
        assert code == 0 and text.startswith("box (ssh)")

    @pytest.mark.parametrize(
        "requirements", [{"cpu": 2, "memoryGb": 4}, {"cpu": 999}], ids=["placed", "no-target"]
    )
    def test_place_with_server_prints_what_local_place_prints(
        self,
        service: tuple[str, PlacementEngine],
        cli: Cli,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        requirements: dict[str, Any],
    ) -> None:
        monkeypatch.setenv("ACODE_PLACEMENT_TOKEN", TOKEN)
        task = tmp_path / "task.yaml"
        task.write_text(yaml.safe_dump({"task": {"name": "t", "requirements": requirements}}))
        fleet = tmp_path / "targets.yaml"
        dumped = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in FLEET]
        fleet.write_text(yaml.safe_dump({"targets": dumped}))
        given = ("--strategy", "performance")
        local = cli("place", task, "--targets", fleet, "--no-discovery", *given)
        remote = cli("place", task, "--server", service[0], *given)
        assert local[0] == remote[0] == (0 if requirements["cpu"] == 2 else 1)

        def timeless(text: str) -> str:
            return re.sub(r"\d+\.\d ms", "_ ms", text)

        assert timeless(remote[1]) == timeless(local[1]), (local, remote)
        assert remote[1].count("\n") >= (3 if local[0] == 0 else 1)

    def test_place_with_server_says_what_it_reserved(
        self, service: tuple[str, PlacementEngine], cli: Cli, task: Path
    ) -> None:
        code, text, _ = cli("place", task, "--server", service[0], "--reserve")
        assert code == 0
        last = text.splitlines()[-1]
        assert re.fullmatch(
            r"reserved: (\S+) until \S+\+00:00 \(release with: acode-placement release \1\)",
            last,
        ), last


@pytest.fixture(scope="module")
def local_only() -> Iterator[str]:
    """A service whose settings say local-only, discovery off."""
    settings = PlacementOptions(discovery_enabled=False, mode="local-only", strategy="auto")
    with serving(create_app(PlacementEngine(), FLEET, TOKEN, defaults=settings)) as base:
        yield base


class TestOptionsOverTheServersSettings:
    """A request's options are laid over the server's settings, not over the
    library's defaults: setting one never resets the others."""

    def test_one_option_keeps_the_rest_of_the_servers(self, local_only: str) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        body = {"task": TASK, "options": {"strategy": "performance"}}
        answer = httpx.post(f"{local_only}/v1/placements", json=body, headers=headers).json()
        # the server's mode holds: box (ssh, more capable) is excluded by local-only
        assert (answer["strategy"], answer["mode"]) == ("performance", "local-only")
        assert answer["target"]["id"] == "local"
        body["options"] = {"mode": "burst", "strategy": "performance"}
        answer = httpx.post(f"{local_only}/v1/placements", json=body, headers=headers).json()
        assert (answer["mode"], answer["target"]["id"]) == ("burst", "box")

    def test_the_client_sends_only_what_was_set(self, local_only: str) -> None:
        with PlacementClient(local_only, token=TOKEN) as client:
            answer = client.place(
                Task.model_validate(TASK), PlacementOptions(strategy="performance")
            )
        assert (answer["mode"], answer["target"]["id"]) == ("local-only", "local")

    def test_place_with_server_refuses_files_it_would_not_read(
        self, local_only: str, cli: Cli, tmp_path: Path
    ) -> None:
        task = tmp_path / "task.yaml"
        task.write_text(yaml.safe_dump({"task": TASK}))
        for flag in ("--targets", "--config"):
            code, out, err = cli("place", task, "--server", local_only, flag, tmp_path / "x.yaml")
            assert code == 2 and out == ""
            assert err.startswith(f"acode-placement: error: {flag}: a service places on its own")


class TestServeCommand:
    def test_refuses_beyond_loopback_without_a_token(self, cli: Cli) -> None:
        code, _, err = cli("serve", "--host", "0.0.0.0")
        assert code == 2
        assert "refusing to serve beyond loopback without a token" in err

    def test_sigterm_finishes_the_request_in_flight(self, tmp_path: Path) -> None:
        # A target that accepts TCP and never speaks SSH keeps a discovery busy ~2 s.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            yaml.safe_dump(
                {
                    "targets": [
                        {
                            "id": "slow",
                            "type": "ssh",
                            "host": "127.0.0.1",
                            "port": silent.getsockname()[1],
                        },
                    ]
                }
            )
        )
        config = tmp_path / "placement.yaml"
        config.write_text(yaml.safe_dump({"placement": {"probeTimeout": 2}}))
        port = free_port()
        env = {**os.environ, "ACODE_PLACEMENT_TOKEN": TOKEN, "XDG_DATA_HOME": str(tmp_path)}
        server = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "acode-placement"),
                "serve",
                "--port",
                str(port),
                "--targets",
                str(targets),
                "--config",
                str(config),
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(base, server, seconds=20)
            answer: dict[str, Any] = {}

            def call() -> None:
                response = httpx.post(
                    f"{base}/v1/targets:discover",
                    json={"refresh": True},
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=30,
                )
                answer["status"] = response.status_code
                answer["body"] = response.json()

            caller = threading.Thread(target=call)
            caller.start()
            time.sleep(0.5)
            server.send_signal(signal.SIGTERM)
            caller.join(30)
            # uvicorn shuts down gracefully, then re-raises the signal it caught
            assert server.wait(30) in (0, -signal.SIGTERM)
        finally:
            if server.poll() is None:
                server.kill()
            silent.close()
        assert answer["status"] == 200
        assert answer["body"][0]["discovery"]["status"] == "unreachable"


def test_concurrent_requests_each_leave_one_record(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.db'}"
    store = HistoryStore(url)
    engine = PlacementEngine(history=store)
    app = create_app(engine, FLEET, None, defaults=PlacementOptions(discovery_enabled=False))

    async def flood(base: str) -> list[int]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
            responses = await asyncio.gather(
                *(client.post("/v1/placements", json={"task": TASK}) for _ in range(300))
            )
        return [r.status_code for r in responses]

    with serving(app) as base:
        statuses = asyncio.run(flood(base))
    assert statuses == [200] * 300
    assert store.count() == 300
    ids = {r.request_id for r in store.list(limit=1000)}
    assert len(ids) == 300


def _workers(pid: int) -> list[int]:
    """The worker processes `serve` (pid) started (multiprocessing's spawned children;
    not its resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == pid and b"spawn_main" in command:
                found.append(int(entry.name))
    return found


def _state(pid: int) -> str | None:
    """A process's state letter (R, S, Z...), None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_workers_share_one_history_and_leave_nothing_behind(tmp_path: Path) -> None:
    """`serve --workers 3`: every answered request has exactly one record in the one
    database, leases never over-commit across processes, and SIGTERM ends them all."""
    database = tmp_path / "history.db"
    config = tmp_path / "placement.yaml"
    config.write_text(
        yaml.safe_dump(
            {"placement": {"discoveryEnabled": False, "history": f"sqlite:///{database}"}}
        )
    )
    targets = tmp_path / "targets.yaml"
    box = {"id": "box", "type": "ssh", "host": "box.invalid", "capabilities": {"cpu": 8}}
    targets.write_text(yaml.safe_dump({"targets": [box]}))
    port = free_port()
    env = {**os.environ, "ACODE_PLACEMENT_TOKEN": TOKEN, "XDG_DATA_HOME": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "acode_placement", "serve", "--port", str(port), "--workers", "3",
         "--config", str(config), "--targets", str(targets)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server)
        deadline = time.monotonic() + 30
        while len(_workers(server.pid)) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.1)

        async def flood() -> list[httpx.Response]:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
                one = {"task": {"name": "one", "requirements": {"cpu": 1}}}
                return await asyncio.gather(
                    *(
                        client.post("/v1/placements", json={**one, "reserve": n % 10 == 0})
                        for n in range(200)
                    )
                )

        answers = asyncio.run(flood())
        odd = [(r.status_code, r.text[:300]) for r in answers if r.status_code != 200]
        assert odd == []
        leased = [r.json()["reservation"] for r in answers if r.json()["reservation"]]
        assert len(leased) == 8  # 20 asked for one CPU each of 8; the other 12 found no room
        workers = _workers(server.pid)
        assert len(workers) == 3
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert "Traceback" not in err
    alive = {pid: _state(pid) for pid in workers}
    assert all(state in (None, "Z") for state in alive.values()), alive
    store = HistoryStore(f"sqlite:///{database}")
    assert store.count() == 200
    assert {r.request_id for r in store.list(limit=1000)} == {
        r.json()["requestId"] for r in answers
    }
    assert len(ReservationStore(f"sqlite:///{database}").active()) == 8


_JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from(["\udc80", "NaN", "-Infinity", "\x1b[31m\x7f", "\u2028\u00e9"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_JSONISH)
def test_answers_are_ascii_json_with_the_values_python_writes(value: Any) -> None:
    """The service's JSON (pydantic-core's where it can, Python's where it cannot) is
    ASCII, gives back the values Python's `json` writes, and refuses NaN and
    Infinity as it does."""
    try:
        reference = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    except ValueError:
        with pytest.raises(ValueError, match="not JSON compliant"):
            ascii_json(value)
        return
    sent = ascii_json(value)
    assert sent.isascii()
    assert json.loads(sent) == json.loads(reference)
