"""The placement lane answers exactly as the FastAPI route would.

Two applications over one engine, served for real on loopback: the service as it
runs (placements by the lane) and the same service with the lane off (every
request through FastAPI's route). Every request, well formed or hostile, must get
the same status, the same content type and the same body from both, but for what
differs between two decisions by nature (request id, decision time). A request the
lane takes must not be refused by the route, and the other way round.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acode_placement.engine import PlacementEngine
from acode_placement.history.store import HistoryStore
from acode_placement.lane import ServiceApp
from acode_placement.models import PlacementOptions
from acode_placement.service import create_app
from tests.test_service import FLEET, TOKEN, serving

VOLATILE = ("requestId", "decisionMs")
GOOD = json.dumps({"task": {"name": "build", "requirements": {"cpu": 2}}}).encode()
AUTH = f"Bearer {TOKEN}".encode()
JSON = b"application/json"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, HistoryStore]]:
    """(lane's base URL, route's base URL, the shared history)."""
    history = HistoryStore(f"sqlite:///{tmp_path_factory.mktemp('lane') / 'history.db'}")
    engine = PlacementEngine(history=history)
    defaults = PlacementOptions(discovery_enabled=False)
    laned = create_app(engine, FLEET, TOKEN, defaults=defaults)
    routed = create_app(engine, FLEET, TOKEN, defaults=defaults)
    assert laned.lane is not None
    routed.lane = None  # every request through FastAPI
    with serving(laned) as lane_base, serving(routed) as route_base:
        yield lane_base, route_base, history


def raw(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send these bytes as they are (duplicate headers, any framing); the answer."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunked(body)
    return int(lines[0].split()[1]), headers, body


def _unchunked(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, rest = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out += rest[:n]
        data = rest[n + 2 :]
    return out


def request(
    body: bytes | None,
    *,
    path: str = "/v1/placements",
    method: str = "POST",
    headers: list[tuple[bytes, bytes]] | None = None,
    length: bool = True,
) -> bytes:
    given = headers if headers is not None else [(b"Authorization", AUTH), (b"Content-Type", JSON)]
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in given]
    payload = body or b""
    if body is not None and length:
        lines.append(b"Content-Length: " + str(len(payload)).encode())
    elif body is not None:
        lines.append(b"Transfer-Encoding: chunked")
        payload = f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n"
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


def same_answer(pair: tuple[str, str, HistoryStore], sent: bytes) -> tuple[int, Any]:
    """The lane's answer, asserted equal to the route's; (status, parsed body)."""
    lane_base, route_base, _ = pair
    answers = []
    for base in (lane_base, route_base):
        status, headers, body = raw(base, sent)
        parsed: Any = json.loads(body) if "json" in headers.get("content-type", "") else body
        if isinstance(parsed, dict):
            for key in VOLATILE:
                parsed.pop(key, None)
        answers.append(
            (status, headers.get("content-type"), headers.get("www-authenticate"), parsed)
        )
    assert answers[0] == answers[1], sent[:300]
    return answers[0][0], answers[0][3]


class TestSameAnswers:
    @pytest.mark.parametrize(
        "body",
        [
            GOOD,
            b'{"requirements": {"cpu": 8}}',
            b'{"requirements": {"cpu": 999}}',  # no target: still 200, success false
            b'{"requirements": {"gpu": {"count": 1}}}',
            b'{"task": {"name": "x", "requirements": {"cpu": 1}}, "candidates": false}',
            b'{"requirements": {"cpu": 1}, "options": {"strategy": "cost-optimized"}}',
            b'{"requirements": {"cpu": 1}, "options": {"strategy": "no-such"}}',  # 400
            b'{"requirements": {"cpu": 1}, "options": {"mode": "local-only"}}',
            b'{"requirements": {"cpu": -1}}',  # 422 in the route's words
            b'{"requirements": {"cpu": 1}, "extra": 1}',
            b'{"task": {"name": "x"}, "requirements": {"cpu": 1}}',  # both
            b'{"requirements": {"cpu": "2"}}',
            b'{"requirements": {"cpu": true}}',
            b"[]",
            b'"text"',
            b"{",
            b"",
            b"{}",
            b'{"requirements": {"cpu": 1e400}}',
            b'{"task": {"name": "\\ud800", "requirements": {}}}',
            b'{"task": {"name": "<script>\\u001b[31m", "requirements": {}}}',
            b"\xff\xfe{}",
            b"[" * 5000 + b"]" * 5000,
        ],
    )
    def test_bodies(self, pair: tuple[str, str, HistoryStore], body: bytes) -> None:
        for path in ("/v1/placements", "/v1/placements:explain"):
            same_answer(pair, request(body, path=path))

    @pytest.mark.parametrize(
        "headers",
        [
            [(b"Content-Type", JSON)],  # no token
            [(b"Authorization", b"Bearer wrong-token-of-some-length"), (b"Content-Type", JSON)],
            [(b"Authorization", b"bearer " + TOKEN.encode()), (b"Content-Type", JSON)],
            [(b"Authorization", b"Basic " + TOKEN.encode()), (b"Content-Type", JSON)],
            [(b"Authorization", b"Bearer  " + TOKEN.encode()), (b"Content-Type", JSON)],
            [(b"Authorization", b"Bearer " + TOKEN.encode() + b" "), (b"Content-Type", JSON)],
            [(b"Authorization", AUTH), (b"Authorization", b"Bearer x"), (b"Content-Type", JSON)],
            [(b"Authorization", b"Bearer x"), (b"Authorization", AUTH), (b"Content-Type", JSON)],
            [(b"Authorization", AUTH)],  # no content type
            [(b"Authorization", AUTH), (b"Content-Type", b"text/plain")],
            [(b"Authorization", AUTH), (b"Content-Type", b"application/problem+json")],
            [(b"Authorization", AUTH), (b"Content-Type", b"APPLICATION/JSON")],
            [(b"Authorization", AUTH), (b"Content-Type", b"application/json; charset=latin-1")],
            [(b"Authorization", AUTH), (b"Content-Type", JSON), (b"Content-Type", b"text/x")],
        ],
    )
    def test_headers(
        self, pair: tuple[str, str, HistoryStore], headers: list[tuple[bytes, bytes]]
    ) -> None:
        same_answer(pair, request(GOOD, headers=headers))

    def test_framing_method_and_query(self, pair: tuple[str, str, HistoryStore]) -> None:
        same_answer(pair, request(GOOD, length=False))  # chunked: the route reads it
        over = [(b"Authorization", AUTH), (b"Content-Type", JSON), (b"Content-Length", b"2000000")]
        same_answer(pair, request(None, headers=over))  # declared over the limit: 413
        for digits in (b"0" * 30 + str(len(GOOD)).encode(), b"9" * 5000):  # long lengths
            head = [(b"Authorization", AUTH), (b"Content-Type", JSON), (b"Content-Length", digits)]
            same_answer(pair, request(None, headers=head) + GOOD)
        same_answer(pair, request(GOOD, path="/v1/placements?limit=1"))
        status, listed = same_answer(pair, request(None, method="GET"))
        assert status == 200 and isinstance(listed, list)
        same_answer(pair, request(GOOD, method="PUT"))
        same_answer(pair, request(GOOD, path="/v1/placements/"))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        body=st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "task",
                            "requirements",
                            "options",
                            "name",
                            "cpu",
                            "memoryGb",
                            "gpu",
                            "tools",
                            "candidates",
                            "reserve",
                            "owner",
                            "strategy",
                            "count",
                            "x",
                        ]
                    ),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=12,
        )
    )
    def test_any_json(self, pair: tuple[str, str, HistoryStore], body: Any) -> None:
        """Whatever JSON arrives, the lane answers as the route does."""
        same_answer(pair, request(json.dumps(body).encode()))


def test_each_answered_placement_is_recorded_once(pair: tuple[str, str, HistoryStore]) -> None:
    lane_base, _, history = pair
    before = history.count()
    ids = []
    with httpx.Client(base_url=lane_base, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        for cpu in (1, 2, 999):
            ids.append(api.post("/v1/placements", json={"requirements": {"cpu": cpu}}).json())
        api.post("/v1/placements:explain", json={"requirements": {"cpu": 1}})  # not recorded
    assert history.count() == before + 3
    for answer in ids:
        record = history.get(answer["requestId"])
        assert record is not None and record.success == answer["success"]


def test_the_lane_takes_well_formed_placements_only(
    pair: tuple[str, str, HistoryStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the comparisons above compare: the lane answered the well-formed ones
    itself, and handed the rest to FastAPI."""
    handed: list[str] = []
    original = ServiceApp.routed

    async def counted(self: ServiceApp, scope: Any, receive: Any, send: Any) -> None:
        handed.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(ServiceApp, "routed", counted)
    lane_base = pair[0]
    assert raw(lane_base, request(GOOD))[0] == 200
    assert raw(lane_base, request(GOOD, path="/v1/placements:explain"))[0] == 200
    assert handed == []
    assert raw(lane_base, request(b"[]"))[0] == 422
    assert raw(lane_base, request(GOOD, headers=[(b"Content-Type", JSON)]))[0] == 401
    assert raw(lane_base, request(None, method="GET"))[0] == 200
    assert handed == ["/v1/placements"] * 3
