"""The service's lane for placements: `POST /v1/placements` (and `:explain`) answered
without FastAPI's routing, dependency solving and body handling.

A placement is what the service is for, and through FastAPI each one paid for its
middleware, routing, dependency solving and body reading, more than deciding on a
small fleet costs. This lane takes only requests it can answer exactly as the route
would: the right method and path, a JSON content type, a declared length within the
limit, the right token, and a body that is a JSON object `PlacementRequest` accepts
(the same `json.loads` and the same validation FastAPI applies). Anything else,
and every error before the decision, goes on to the application with its body
replayed, so that refusals (401, 413, 422...) keep the route's words and shape. The
decision itself, and its errors, are the route's: the same `service._decided`, and
the same exception handlers.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from acode_placement.errors import PlacementError
from acode_placement.web import read_body, replaying

_PATHS = {"/v1/placements": False, "/v1/placements:explain": True}  # path: dry run
_JSON_TYPES = (b"application/json", b"application/json; charset=utf-8")
_READ = (b"content-length", b"content-type", b"authorization")
_JSON_HEADER = (b"content-type", b"application/json")


@dataclass(frozen=True, slots=True)
class Lane:
    """What the lane needs of the service: the route's model, decision and handlers."""

    model: type[BaseModel]  # the body, as the route validates it
    decide: Callable[[Any, Any, bool], Awaitable[bytes]]  # (service, body, dry): JSON
    refused: Callable[[PlacementError], Awaitable[Response]]  # the route's handlers
    crashed: Callable[[Exception], Awaitable[Response]]
    limit: int  # body bytes


class ServiceApp(FastAPI):
    """The service's FastAPI application, with placements taken by the lane before
    anything of FastAPI's runs (its middleware, telemetry and routing)."""

    lane: Lane | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lane
        if lane is not None and scope["type"] == "http" and scope["path"] in _PATHS:
            await _placed(self, lane, scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request as FastAPI answers it."""
        await super().__call__(scope, receive, send)


async def _placed(app: ServiceApp, lane: Lane, scope: Scope, receive: Receive, send: Send) -> None:
    """A placement answered here when it can be answered exactly as the route would;
    else (and for every refusal before the decision) by the application."""
    headers = _headers(scope) or {}
    length = headers.get(b"content-length", b"")
    service = getattr(app.state, "service", None)
    if (
        scope["method"] != "POST"
        or scope.get("query_string")
        or headers.get(b"content-type", b"").lower() not in _JSON_TYPES
        or not length.isdigit()
        or len(length) > len(str(lane.limit))  # (int() of 5,000 digits raises)
        or int(length) > lane.limit
        or service is None
        or not _authorised(service.token, headers.get(b"authorization"))
    ):
        await app.routed(scope, receive, send)
        return
    body = await read_body(receive, lane.limit)
    if body is None:
        return  # the client left: nobody to answer
    request = None if len(body) > lane.limit else _accepted(lane.model, body)
    if request is None:  # the route says what is wrong with it, in its words
        await app.routed(scope, replaying(body, receive), send)
        return
    try:
        answer = await lane.decide(service, request, _PATHS[scope["path"]])
    except PlacementError as exc:
        await (await lane.refused(exc))(scope, receive, send)
        return
    except Exception as exc:  # what the route's handler of anything else says
        await (await lane.crashed(exc))(scope, receive, send)
        return
    # What the route's Response(answer, media_type="application/json") sends.
    sent = [(b"content-length", str(len(answer)).encode()), _JSON_HEADER]
    await send({"type": "http.response.start", "status": 200, "headers": sent})
    await send({"type": "http.response.body", "body": answer})


def _accepted(model: type[BaseModel], body: bytes) -> BaseModel | None:
    """The body as the route would accept it (json.loads, then the model's
    validation of the object, as FastAPI does), or None if the route would refuse it."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return model.model_validate(data)
    except (ValidationError, ValueError, RecursionError):
        return None


def _headers(scope: Scope) -> dict[bytes, bytes] | None:
    """The headers this lane reads; None when one of them is given twice (the route
    then decides which counts)."""
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _READ:
            if name in found:
                return None
            found[name] = value
    return found


def _authorised(token: str | None, given: bytes | None) -> bool:
    """The route's test: no token configured, or `Bearer <token>` (scheme in any case)."""
    if token is None:
        return True
    if given is None:
        return False
    scheme, _, credentials = given.partition(b" ")
    if scheme.lower() != b"bearer" or not credentials:
        return False
    return hmac.compare_digest(credentials, token.encode())
