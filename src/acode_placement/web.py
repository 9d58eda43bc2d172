"""The HTTP pieces under the service's routes, none of which knows the engine:
RFC 9457 problem details (documented in the OpenAPI), JSON with every non-ASCII
character escaped, the request body limit (declared or chunked), bearer tokens
read and checked without ever being echoed, and what counts as loopback.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path as FilePath
from typing import Any

import pydantic_core
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acode_placement.config import TOKEN_ENV, read_bounded
from acode_placement.errors import (
    InputError,
)
from acode_placement.models import (
    Model,
)

MAX_BODY = 1024 * 1024  # bytes
PROBLEM = "application/problem+json"


class ProblemDetail(Model):
    """RFC 9457 problem details: `detail` has the command line's words."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    words = {
        400: "bad input (an unknown strategy, a fleet without members...)",
        401: "no valid bearer token",
        404: "no such decision or reservation",
        409: "the reservation has expired",
        413: "request body too large",
        422: "the body does not match the schema (same words as the task file's errors)",
        503: "the history database cannot be reached",
    }
    schema = {"$ref": "#/components/schemas/ProblemDetail"}
    return {
        code: {
            "model": ProblemDetail,
            "description": words[code],
            "content": {PROBLEM: {"schema": schema}},
        }
        for code in codes
    }


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a string a client sent (a lone
    surrogate among them, which UTF-8 cannot encode) always comes back as valid JSON."""

    def render(self, content: Any) -> bytes:
        return ascii_json(content)


def ascii_json(content: Any) -> bytes:
    """What `AsciiJSONResponse` sends: compact JSON, every non-ASCII character escaped.

    pydantic-core writes it, about three times as fast as Python's `json` on a full
    answer (every candidate's checks), when what it writes is all ASCII and has no
    NaN or Infinity in it (the common case); else Python's `json` does, which escapes
    what is not ASCII and refuses those numbers. Both write the same values, and
    give the same bytes but for how a float with an exponent is spelled (`1e-05` or
    `0.00001`)."""
    try:
        fast: bytes | None = pydantic_core.to_json(content)
    except pydantic_core.PydanticSerializationError:  # a lone surrogate: Python escapes it
        fast = None
    if fast is not None and fast.isascii() and b"NaN" not in fast and b"Infinity" not in fast:
        return fast
    return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def problem(status: int, title: str, detail: str, **headers: str) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return AsciiJSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers or None)


class BodyLimit:
    """Refuse request bodies over `limit` bytes (413), declared or streamed (chunked).

    The body is read here, up to the limit, before the application sees it: an
    error raised while the application reads it would be reported as a bad body
    (400) instead of a body too large.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        body = await read_body(receive, self.limit)
        if body is None:
            return  # the client left: nobody to answer
        if len(body) > self.limit:
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body over {self.limit} bytes"
        await problem(413, "Payload Too Large", detail)(scope, receive, send)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """A request's body, read until its end or until it is over `limit` bytes (the
    caller refuses it then); None when the client left first."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit or not message.get("more_body", False):
            return bytes(body)


def replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` that gives the whole `body` (already read) first."""
    whole: Message | None = {"type": "http.request", "body": body, "more_body": False}

    async def replay() -> Message:
        nonlocal whole
        if whole is not None:
            message, whole = whole, None
            return message
        return await receive()

    return replay


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_TOKEN = re.compile(r"^[\x21-\x7e]{16,4096}$")  # visible ASCII: what a header can carry


def read_token(token_file: FilePath | None, environ: dict[str, str]) -> str | None:
    """The bearer token: the file's first line, else $ACODE_PLACEMENT_TOKEN; None if neither.

    A token is 16 to 4096 visible ASCII characters (what an Authorization header can
    carry); errors say what is wrong with it and never echo it.
    """
    if token_file is not None:
        where = f"--token-file {token_file}"
        try:
            raw = read_bounded(token_file, 64 * 1024)
        except InputError as exc:
            raise InputError(f"--token-file {exc}") from None
        try:
            text = raw.decode("utf-8-sig").strip()
        except UnicodeDecodeError:
            raise InputError(f"{where}: not UTF-8 text") from None
        if not text:
            raise InputError(f"{where}: empty")
        return check_token(text.splitlines()[0].strip(), where)
    value = environ.get(TOKEN_ENV, "").strip()
    return check_token(value, TOKEN_ENV) if value else None


def check_token(token: str, where: str) -> str:
    """`token` if it can be a bearer token; else InputError saying why, without it."""
    if not _TOKEN.match(token):
        raise InputError(
            f"{where}: a token must be 16 to 4096 visible ASCII characters"
            f" (no spaces, controls or other characters); this one has {len(token)}"
            " characters and is not shown"
        )
    return token
