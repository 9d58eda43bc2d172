"""Hostile HTTP clients against a real `acode-placement serve` (and, for the timing
cases, the same guarded uvicorn in this process with short deadlines): no 5xx, no
secret in any response, no connection held for ever, every route behind the token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml

from acode_placement import server as guarded
from acode_placement.discovery.parse import ProbeReport
from acode_placement.discovery.probes import ProbeError
from acode_placement.discovery.service import Discovery
from acode_placement.engine import PlacementEngine
from acode_placement.history.store import HistoryStore
from acode_placement.models import (
    AnyTarget,
    Capabilities,
    DiscoveryStatus,
    LocalTarget,
    PlacementOptions,
    TargetKind,
)
from acode_placement.service import create_app
from tests.conftest import FLEET
from tests.hostile import SCRIPT, SECRETS, environment
from tests.serving import wait_until_up
from tests.sshd import free_port

TOKEN = "correct-horse-battery-staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TASK = {"name": "build", "requirements": {"cpu": 2}}


@contextlib.contextmanager
def serve(home: Path, settings: dict[str, Any]) -> Iterator[str]:
    """`acode-placement serve` in a subprocess, on a free port, with the token."""
    config = home / "placement.yaml"
    config.write_text(yaml.safe_dump({"placement": {"discoveryEnabled": False, **settings}}))
    port = free_port()
    process = subprocess.Popen(
        [str(SCRIPT), "serve", "--port", str(port), "--config", config, "--targets", FLEET],
        env=environment(home, ACODE_PLACEMENT_TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        yield base
    finally:
        process.terminate()
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        assert "Traceback" not in err, err[-3000:]
        for secret in SECRETS:
            assert secret not in err, f"{secret} in the server's log"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("serve")
    with serve(home, {"history": f"sqlite:///{home / 'history.db'}"}) as url:
        yield url


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert isinstance(body["detail"], str) and body["status"] == status
    for secret in SECRETS:
        assert secret not in response.text
    return body


ROUTES = [
    ("GET", "/v1/placements"),
    ("POST", "/v1/placements"),
    ("POST", "/v1/placements:explain"),
    ("GET", "/v1/placements/abc"),
    ("GET", "/v1/targets"),
    ("POST", "/v1/targets:discover"),
    ("GET", "/v1/reservations"),
    ("DELETE", "/v1/reservations/abc"),
    ("GET", "/v1/strategies"),
    ("GET", "/metrics"),
]
BAD_AUTH = {
    "none": {},
    "wrong": {"Authorization": "Bearer wrong-horse-battery-staple"},
    "prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "longer": {"Authorization": f"Bearer {TOKEN}x"},
    "basic": {"Authorization": f"Basic {TOKEN}"},
    "no-scheme": {"Authorization": TOKEN},
}


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_needs_the_token(base: str, method: str, path: str) -> None:
    for headers in BAD_AUTH.values():
        response = httpx.request(method, base + path, headers=headers, json={"task": TASK})
        assert_problem(response, 401)


def test_health_says_ok_and_nothing_else(base: str) -> None:
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}


def post(base: str, content: bytes | str, path: str = "/v1/placements:explain") -> httpx.Response:
    headers = {**AUTH, "Content-Type": "application/json"}
    return httpx.post(base + path, content=content, headers=headers, timeout=30)


BODIES: dict[str, tuple[bytes | str | dict[str, Any], int]] = {
    "not-json": ("{task:", 422),
    "not-utf8": (b"\xff\xfe{", 400),
    "deeply-nested": ('{"task": ' + "[" * 100_000 + "]" * 100_000 + "}", 400),
    "array": ("[]", 422),
    "string": ('"task"', 422),
    "null": ("null", 422),
    "number-overflow": ('{"task": {"name": "x", "requirements": {"cpu": 1e999}}}', 422),
    "cpu-true": ({"task": {"name": "x", "requirements": {"cpu": True}}}, 422),
    "runtime-1e308": ({"task": {"name": "x", "requirements": {"maxRuntimeMinutes": 1e308}}}, 422),
    "tool-option": ({"task": {"name": "x", "requirements": {"tools": ["--tools-only"]}}}, 422),
    "unknown-key": ({"task": {"name": "x", "requirements": {"memroyGb": 1}}}, 422),
    "task-and-requirements": ({"task": TASK, "requirements": {"cpu": 1}}, 422),
    "owner-too-long": ({"task": TASK, "owner": "o" * 300}, 422),
    "unknown-strategy": ({"task": TASK, "options": {"strategy": "[/]\u001b"}}, 400),
    "timeout-huge": ({"task": TASK, "options": {"decisionTimeout": 1e9}}, 422),
    "timeout-inf": ('{"task": {"name": "x"}, "options": {"decisionTimeout": Infinity}}', 422),
    "nan-literal": ('{"task": {"name": "x", "requirements": {"cpu": NaN}}}', 422),
    "flag-number": ({"task": TASK, "reserve": 1}, 422),
    # keys that look like pydantic's union markers in an error's location
    "top-key-with-paren": ('{"\u00bd(x": {}}', 422),
    "key-with-brackets": ({"task": {"name": "x", "requirements": {"a[b](c)": 1}}}, 422),
    "custom-huge-integer": (
        '{"task": {"name": "x", "requirements": {"custom": {"k": 1' + "0" * 400 + "}}}}",
        422,
    ),
    # NUL, which PostgreSQL's text and jsonb refuse: recorded escaped
    "nul-custom": ('{"task": {"name": "x", "requirements": {"custom": {"k": "a\\u0000"}}}}', 200),
    # lone surrogates: valid JSON escapes that UTF-8 cannot encode
    "surrogate-key": ('{"\\ud89a\\udf91": {}}', 422),
    "surrogate-name": ('{"task": {"name": "a\\ud800b"}}', 422),
    "surrogate-custom": (
        '{"task": {"name": "x", "requirements": {"custom": {"\\ud800": "\\udfff"}}}}',
        200,
    ),
}


@pytest.mark.parametrize(("body", "status"), BODIES.values(), ids=BODIES.keys())
def test_bad_bodies_are_problems_not_crashes(
    base: str, body: bytes | str | dict[str, Any], status: int
) -> None:
    content = json.dumps(body) if isinstance(body, dict) else body
    if status == 200:  # accepted as data: the answer is still valid JSON, and recorded
        response = post(base, content)
        assert response.status_code == 200 and response.json()["candidates"]
        placed = post(base, content, "/v1/placements")
        assert placed.status_code == 200, placed.text[:500]
        request_id = placed.json()["requestId"]
        record = httpx.get(f"{base}/v1/placements/{request_id}", headers=AUTH)
        assert record.status_code == 200, record.text[:500]
        return
    assert_problem(post(base, content), status)


def test_a_declared_body_over_the_limit_is_413(base: str) -> None:
    assert_problem(post(base, b" " * (2 * 1024 * 1024)), 413)


def test_a_chunked_body_over_the_limit_is_413(base: str) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10 * 16):
            yield b" " * 65536  # 10 MiB, without a Content-Length

    response = httpx.post(
        f"{base}/v1/placements",
        content=chunks(),
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=30,
    )
    assert_problem(response, 413)


QUERIES = {
    "limit-float": ("/v1/placements?limit=1e30", 422),
    "limit-zero": ("/v1/placements?limit=0", 422),
    "limit-huge": ("/v1/placements?limit=99999999999999999999", 422),
    "since-garbage": ("/v1/placements?since=garbage", 422),
    "since-far": ("/v1/placements?since=99999-01-01", 422),
    "target-long": ("/v1/placements?target=" + "x" * 1000, 422),
    "id-percent": ("/v1/placements/%25", 404),
    "id-underscore": ("/v1/placements/_", 404),
    "id-long": ("/v1/placements/" + "x" * 1000, 422),
    "reservation-percent": ("/v1/reservations/%25", 404),
}


@pytest.mark.parametrize(("path", "status"), QUERIES.values(), ids=QUERIES.keys())
def test_bad_queries_are_problems(base: str, path: str, status: int) -> None:
    method = "DELETE" if path.startswith("/v1/reservations") else "GET"
    assert_problem(httpx.request(method, base + path, headers=AUTH), status)


# Bodies the service accepts whose strings no database, or PostgreSQL alone,
# can hold as they are; each answer must have its record, on both.
_STORED_ESCAPED = [
    body for body, status in BODIES.values() if status == 200 and isinstance(body, str)
] + [
    '{"task": {"name": "x", "requirements": {"custom": {"a\\u0000": "b\\u0000"}}}}',
    '{"task": {"name": "x", "requirements": {"custom": {"k": {"in": ["\\udfff", "\\u0000"]}}}}}',
    '{"requirements": {"custom": {"\\ud800x": true}}, "candidates": false}',
]


def test_what_is_answered_is_recorded_on_either_database(url: str) -> None:
    """The service in process on a SQLite file and on the PostgreSQL server: every
    placement answered 200 has its record, whatever its strings hold."""
    store = HistoryStore(url)
    app = create_app(
        PlacementEngine(history=store),
        [LocalTarget(id="local", capabilities=Capabilities(cpu=4, memory_gb=8))],
        TOKEN,
        defaults=PlacementOptions(discovery_enabled=False),
    )

    async def post_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        headers = {**AUTH, "Content-Type": "application/json"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [
                await client.post("/v1/placements", content=body, headers=headers)
                for body in _STORED_ESCAPED
            ]

    answers = asyncio.run(post_all())
    assert [a.status_code for a in answers] == [200] * len(_STORED_ESCAPED), [
        a.text[:300] for a in answers
    ]
    for answer in answers:
        assert store.get(answer.json()["requestId"]) is not None, answer.text[:300]
    assert store.count() == len(_STORED_ESCAPED)


def test_a_recorded_name_comes_back_as_data(base: str) -> None:
    evil = "[/]\x1b[31m<script>alert(1)</script>\u202e"
    placed = httpx.post(
        f"{base}/v1/placements", json={"task": {**TASK, "name": evil}}, headers=AUTH
    ).json()
    record = httpx.get(f"{base}/v1/placements/{placed['requestId']}", headers=AUTH)
    assert record.status_code == 200 and record.json()["taskName"] == evil
    assert record.headers["content-type"] == "application/json"


def test_no_secret_when_the_database_cannot_be_reached(tmp_path: Path) -> None:
    url = "postgresql+psycopg://topsecretuser:hunter2@127.0.0.1:1/db?sslkey=/secret/key"
    with serve(tmp_path, {"history": url}) as base:
        anonymous = httpx.get(f"{base}/readyz")
        assert anonymous.status_code == 503
        assert anonymous.json() == {"status": "not ready"}
        told = httpx.get(f"{base}/readyz", headers=AUTH)
        assert told.status_code == 503
        detail = told.json()["detail"]
        assert "127.0.0.1:1" in detail and "***" in detail
        for secret in SECRETS:
            assert secret not in detail
        assert_problem(httpx.get(f"{base}/v1/placements", headers=AUTH), 503)
        placed = httpx.post(f"{base}/v1/placements", json={"task": TASK}, headers=AUTH)
        assert placed.status_code < 500 and "hunter2" not in placed.text


def test_idle_clients_cannot_exhaust_the_real_server(base: str) -> None:
    """300 connections that send nothing or half a request: /healthz answers again
    once their deadline (10 s) has passed, and the server never stops accepting."""
    held = []
    try:
        for n in range(300):
            sock = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
            if n % 2:
                sock.sendall(b"POST /v1/placements HTTP/1.1\r\nHost: x\r\n")  # half a head
            held.append(sock)
        deadline = time.monotonic() + guarded.REQUEST_SECONDS + 10
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server stopped answering"
            time.sleep(0.2)
        # every idle or half-sent connection was closed (the ones over the cap after a 503)
        assert all(closed_within(sock, guarded.REQUEST_SECONDS + 5) for sock in held)
    finally:
        for sock in held:
            sock.close()


# --------------------------------------------------- the same guards, with short deadlines


class SlowProbe:
    """A probe that takes a second (longer than Quick's request deadline)."""

    async def probe(
        self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool = False
    ) -> ProbeReport:
        await asyncio.sleep(1.0)
        raise ProbeError(DiscoveryStatus.UNREACHABLE, "slow on purpose")


class Quick(guarded.GuardedProtocol):
    request_seconds = 0.5
    max_connections = 8
    max_head_bytes = 4096
    requests_per_connection = 5


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    home = tmp_path_factory.mktemp("quick")
    discovery = Discovery({TargetKind.LOCAL: SlowProbe()})
    engine = PlacementEngine(
        discovery=discovery, history=HistoryStore(f"sqlite:///{home / 'history.db'}")
    )
    fleet = [LocalTarget(id="local", capabilities=Capabilities(cpu=4, memory_gb=8))]
    app = create_app(engine, fleet, TOKEN, defaults=PlacementOptions(discovery_enabled=False))
    port = free_port()
    server = uvicorn.Server(guarded.config(app, "127.0.0.1", port, protocol=Quick))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", port
    server.should_exit = True
    thread.join(10)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes `sock` (after any answer) within `seconds`."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


STALLS = {
    "silent": b"",
    "half-request-line": b"GET /hea",
    "half-head": b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
    "half-body": (
        b"POST /v1/placements HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n{"
    ),
    "half-chunked": (
        b"POST /v1/placements HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"
    ),
}


@pytest.mark.parametrize("sent", STALLS.values(), ids=STALLS.keys())
def test_a_stalled_request_is_closed_at_its_deadline(quick: tuple[str, int], sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", quick[1])) as sock:
        sock.sendall(sent)
        assert closed_within(sock, Quick.request_seconds + 3)


def test_a_pipelined_half_request_gets_a_deadline(quick: tuple[str, int]) -> None:
    with socket.create_connection(("127.0.0.1", quick[1])) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /heal")  # one packet
        assert closed_within(sock, Quick.request_seconds + 3)


def test_a_kept_alive_connection_gets_a_new_deadline(quick: tuple[str, int]) -> None:
    with socket.create_connection(("127.0.0.1", quick[1])) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in sock.recv(4096)
        sock.sendall(b"GET /heal")  # the next request, never finished
        assert closed_within(sock, Quick.request_seconds + 3)


@pytest.mark.parametrize("pieces", [1, 16], ids=["at-once", "in-pieces"])
def test_a_head_over_the_limit_is_431(quick: tuple[str, int], pieces: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 8192 + b"\r\n"
    step = len(head) // pieces + 1
    with socket.create_connection(("127.0.0.1", quick[1])) as sock:
        for start in range(0, len(head), step):
            with contextlib.suppress(OSError):
                sock.sendall(head[start : start + step])
            time.sleep(0.01)
        with contextlib.suppress(OSError):
            sock.sendall(b"\r\n")
        sock.settimeout(5)
        assert b" 431 " in sock.recv(4096)


def test_connections_over_the_cap_are_turned_away_then_served(quick: tuple[str, int]) -> None:
    held = [socket.create_connection(("127.0.0.1", quick[1])) for _ in range(Quick.max_connections)]
    try:
        time.sleep(0.1)
        with socket.create_connection(("127.0.0.1", quick[1])) as extra:
            extra.settimeout(5)
            assert b" 503 " in extra.recv(4096)
        time.sleep(Quick.request_seconds + 0.5)  # the idle ones have been closed
        assert httpx.get(f"{quick[0]}/healthz", timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_a_slow_application_is_not_cut_by_the_request_deadline(quick: tuple[str, int]) -> None:
    """The deadline covers receiving the request; a placement may take longer (one
    that wants verified capabilities waits for the probe of a declared target)."""
    options = {"discoveryEnabled": True, "decisionTimeout": 3, "requireVerified": True}
    started = time.monotonic()
    response = httpx.post(
        f"{quick[0]}/v1/placements", json={"task": TASK, "options": options}, headers=AUTH,
        timeout=10,
    )  # fmt: skip
    assert time.monotonic() - started > Quick.request_seconds * 1.5
    assert response.status_code == 200
    assert response.json()["candidates"][0]["discovery"]["status"] == "unreachable"


def test_a_kept_alive_connection_closes_after_its_requests(quick: tuple[str, int]) -> None:
    """The last of a connection's requests is answered in full with `connection:
    close`, then the connection closes (so that `serve --workers` clients reconnect to
    whichever worker is free); pipelined or one by one, none is answered twice."""
    ask = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", quick[1]), timeout=5) as sock:
        answers = []
        for _ in range(Quick.requests_per_connection):
            sock.sendall(ask)
            answers.append(sock.recv(4096))
        assert all(
            a.startswith(b"HTTP/1.1 200") and a.endswith(b'{"status":"ok"}') for a in answers
        )
        assert [b"connection: close" in a.lower() for a in answers] == [False] * 4 + [True]
        assert closed_within(sock, 3)
    with socket.create_connection(("127.0.0.1", quick[1]), timeout=5) as sock:
        sock.sendall(ask * (Quick.requests_per_connection + 2))  # pipelined, one packet
        received = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
        assert received.count(b"HTTP/1.1 200") == Quick.requests_per_connection
        assert received.lower().count(b"connection: close") == 1
