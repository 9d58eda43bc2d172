"""The HTTP service: the engine for workers in other processes and on other machines.

FastAPI under uvicorn. Every route but the health checks needs the bearer token
(compared in constant time). Errors are RFC 9457 problem details carrying the
same words as the command line. Request bodies are limited in size; targets'
key paths and credentials are never returned; CORS is off.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from acode_placement import explain
from acode_placement.config import package_version
from acode_placement.engine import PlacementEngine
from acode_placement.errors import (
    InputError,
    PlacementError,
    ReservationError,
    StoreUnavailableError,
    UnknownNameError,
)
from acode_placement.history.database import HistoryError
from acode_placement.lane import Lane, ServiceApp
from acode_placement.matching import selects
from acode_placement.messages import describe_error
from acode_placement.models import (
    AnyTarget,
    Flag,
    Model,
    Name,
    PlacementOptions,
    Task,
    TaskRequirements,
)
from acode_placement.telemetry import get_logger
from acode_placement.web import (
    MAX_BODY,
    AsciiJSONResponse,
    BodyLimit,
    ascii_json,
    documented,
    problem,
)

_log = get_logger("acode_placement.service")
# Errors that mean the body is not a JSON object at all.
_NOT_JSON = frozenset({"json_invalid", "model_attributes_type", "dict_type", "missing"})


class PlacementRequest(Model):
    """A task (name and requirements, as in a task file) or bare requirements."""

    task: Task | None = None
    requirements: TaskRequirements | None = None
    options: PlacementOptions | None = None
    reserve: Flag = False
    owner: Name | None = None
    candidates: Flag = Field(
        default=True,
        description="false: the answer leaves out `candidates` (every target's score,"
        " matches and mismatches); the choice, ranking, cause counts and why stay. On a"
        " fleet of thousands, rendering every candidate costs more than deciding.",
    )

    @model_validator(mode="after")
    def _one_task(self) -> PlacementRequest:
        if self.task is not None and self.requirements is not None:
            raise ValueError("give task or requirements, not both")
        return self

    @property
    def wanted(self) -> TaskRequirements:
        if self.task is not None:
            return self.task.requirements
        return self.requirements or TaskRequirements()


class DiscoverRequest(Model):
    ids: list[str] = Field(default_factory=list, description="target ids; empty: every target")
    refresh: Flag = False


@dataclass(frozen=True, slots=True)
class Service:
    """What the routes share: the engine, the targets, the token, default options."""

    engine: PlacementEngine
    targets: list[AnyTarget]
    token: str | None
    defaults: PlacementOptions


# The dependencies are coroutines although they never wait: FastAPI runs a plain
# function dependency in its thread pool, two thread hand-overs a request for nothing.
async def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


_bearer = HTTPBearer(auto_error=False)


def _token_ok(service: Service, credentials: HTTPAuthorizationCredentials | None) -> bool:
    if service.token is None:
        return True
    given = credentials.credentials if credentials else ""
    return bool(given) and hmac.compare_digest(given.encode(), service.token.encode())


async def _authorised(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if not _token_ok(request.app.state.service, credentials):
        raise HTTPException(401, "a valid bearer token is required")


Svc = Annotated[Service, Depends(_service)]
router = APIRouter(
    dependencies=[Depends(_authorised)], responses=documented(400, 401, 404, 409, 413, 422, 503)
)
open_router = APIRouter(responses=documented(503))


def create_app(
    engine: PlacementEngine,
    targets: list[AnyTarget],
    token: str | None,
    *,
    defaults: PlacementOptions | None = None,
) -> FastAPI:
    """The application. `token` None means no authentication (loopback only)."""
    app = ServiceApp(  # placements go by the lane (`lane`), the rest by FastAPI
        default_response_class=AsciiJSONResponse,
        title="acode-placement",
        summary="Decide where a task should run, and say why.",
        version=package_version(),
    )
    app.state.service = Service(engine, targets, token, defaults or PlacementOptions())
    app.lane = Lane(
        PlacementRequest,
        lambda service, body, dry: _decided(service, body, dry=dry),
        lambda exc: _refused(None, exc),
        lambda exc: _crashed(None, exc),
        MAX_BODY,
    )
    app.add_middleware(BodyLimit)
    app.add_exception_handler(StarletteHTTPException, _http_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(PlacementError, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _crashed)
    app.include_router(router)
    app.include_router(open_router)
    return app


async def _http_problem(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
    title = {
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        405: "Method Not Allowed",
    }.get(exc.status_code, "Error")
    detail = str(exc.detail)
    if exc.status_code == 400 and "parsing the body" in detail:
        detail = "body: cannot be parsed (not UTF-8 JSON)"
    return problem(exc.status_code, title, detail, **headers)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    body_errors = [e for e in errors if e["loc"][:1] == ("body",)]
    whole = next((e for e in body_errors if len(e["loc"]) <= 2 and e["type"] in _NOT_JSON), None)
    if whole is not None:
        detail = "body: expected a JSON object (Content-Type: application/json)"
        if whole["type"] == "json_invalid":
            detail = f"body: invalid JSON ({whole.get('ctx', {}).get('error', 'cannot parse')})"
    elif body_errors:
        trimmed = [{**e, "loc": tuple(e["loc"][1:])} for e in body_errors]
        detail = describe_error(trimmed, exc.body, _body_model(request))  # type: ignore[arg-type]
    else:
        first = errors[0]
        where = ".".join(str(p) for p in first["loc"][1:])
        detail = f"{where}: {first['msg']}"
    return problem(422, "Unprocessable Content", detail)


async def _refused(_: Request | None, exc: PlacementError) -> JSONResponse:
    if isinstance(exc, HistoryError | StoreUnavailableError):
        return problem(503, "Service Unavailable", str(exc))
    if isinstance(exc, ReservationError) and "no reservation" in str(exc):
        return problem(404, "Not Found", str(exc))
    if isinstance(exc, ReservationError) and "expired" in str(exc):
        return problem(409, "Conflict", str(exc))
    return problem(400, "Bad Request", str(exc))


async def _crashed(_: Request | None, exc: Exception) -> JSONResponse:
    _log.error("service.error", error=repr(exc))
    return problem(500, "Internal Server Error", "the request failed; see the server log")


def _options(service: Service, request: PlacementRequest) -> PlacementOptions:
    """The server's settings, with what the request set over them (a request that
    names a strategy keeps the server's mode, discovery and timeout)."""
    options = service.defaults
    if request.options is not None:
        given = request.options.model_dump(exclude_unset=True, by_alias=False)
        options = options.model_copy(update=given)
    registry = service.engine.registry
    if options.strategy not in registry:
        raise UnknownNameError("strategy", options.strategy, registry.names(), "options.strategy")
    return options


async def _decided(service: Service, body: PlacementRequest, *, dry: bool) -> bytes:
    """The answer to a placement request, as the JSON bytes both the route and the
    lane send."""
    result = await service.engine.place(
        body.wanted,
        service.targets,
        _options(service, body),
        task_name=body.task.name if body.task else None,
        record=not dry,
        reserve=body.reserve and not dry,
        owner=body.owner,
    )
    # Rendered as it is: the object is the engine's own, so FastAPI's walk through it
    # to validate a `dict[str, Any]` would only cost time (much of it at 1,000 targets).
    answer = explain.result_json(result) if body.candidates else explain.outcome_json(result)
    return ascii_json(answer)


async def _decide(service: Service, body: PlacementRequest, *, dry: bool) -> Response:
    content = await _decided(service, body, dry=dry)
    return Response(content, media_type="application/json")


@router.post("/v1/placements", tags=["placements"], response_model=dict[str, Any])
async def place(body: PlacementRequest, service: Svc) -> Response:
    """Choose a target (and with `reserve`, lease it); the `place --json` object."""
    return await _decide(service, body, dry=False)


@router.post("/v1/placements:explain", tags=["placements"], response_model=dict[str, Any])
async def explain_placement(body: PlacementRequest, service: Svc) -> Response:
    """Every target's score, matches and mismatches; nothing is recorded or reserved."""
    return await _decide(service, body, dry=True)


@router.get("/v1/placements", tags=["history"])
async def history(
    service: Svc,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    since: datetime | None = None,
    target: Annotated[str | None, Query(max_length=256)] = None,
    failed: bool = False,
) -> list[dict[str, Any]]:
    """Recorded decisions, newest first."""
    store = _history(service.engine)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    records = await asyncio.to_thread(
        store.list, limit=limit, since=since, target=target, failed=True if failed else None
    )
    return [r.summary_json() for r in records]


@router.get("/v1/placements/{request_id}", tags=["history"])
async def history_one(
    request_id: Annotated[str, Path(max_length=64)], service: Svc
) -> dict[str, Any]:
    """One recorded decision, with its explanation as it was."""
    record = await asyncio.to_thread(_history(service.engine).get, request_id)
    if record is None:
        raise HTTPException(404, f"no recorded decision has the request id {request_id!r}")
    from acode_placement.history.replay import explanation  # noqa: PLC0415

    result = await asyncio.to_thread(explanation, service.engine, record)
    return {**record.summary_json(), "result": result, "requirements": record.requirements}


@router.get("/v1/reservations", tags=["reservations"])
async def reservations(service: Svc) -> list[dict[str, Any]]:
    """Active leases."""
    store = _leases(service.engine)
    return [explain.lease_json(lease) for lease in await asyncio.to_thread(store.active)]


@router.delete("/v1/reservations/{reservation_id}", tags=["reservations"])
async def release(
    reservation_id: Annotated[str, Path(max_length=64)], service: Svc
) -> dict[str, Any]:
    """End a lease (again is harmless)."""
    store = _leases(service.engine)
    return explain.lease_json(await asyncio.to_thread(store.release, reservation_id))


@router.get("/v1/targets", tags=["targets"])
async def list_targets(service: Svc) -> list[dict[str, Any]]:
    """Every candidate (fleets expanded) with its merged capabilities."""
    engine = service.engine
    resolved = await engine.resolve(service.targets)
    known = await engine.capabilities(resolved, TaskRequirements(), service.defaults)
    listed = [explain.target_json(t, k) for t, k in zip(resolved, known, strict=True)]
    if engine.reservations is not None:  # what active leases hold on each target
        held = await asyncio.to_thread(engine.reservations.usage, [t.id for t in resolved])
        for entry, target in zip(listed, resolved, strict=True):
            usage = held.get(target.id)
            if usage is not None and usage.tasks:
                entry["reserved"] = {"cpu": usage.cpu, "memoryGb": usage.memory_gb,
                                     "gpus": usage.gpus, "tasks": usage.tasks}  # fmt: skip
    return listed


@router.post("/v1/targets:discover", tags=["targets"])
async def discover(body: DiscoverRequest, service: Svc) -> list[dict[str, Any]]:
    """Probe targets now (or serve them from the cache unless `refresh`)."""
    resolved = await service.engine.resolve(service.targets)
    wanted = [t for t in resolved if not body.ids or selects(body.ids, t)]
    known = await service.engine.discover(wanted, refresh=body.refresh)
    return [explain.target_json(t, k) for t, k in zip(wanted, known, strict=True)]


@router.get("/v1/strategies", tags=["strategies"])
async def strategies(service: Svc) -> dict[str, Any]:
    registry = service.engine.registry
    entries = [
        {"name": name, "origin": entry.origin, "description": entry.description}
        for name, entry in registry
    ]
    broken = [{"name": n, "error": e} for n, e in registry.broken.items()]
    return {"strategies": entries, "broken": broken}


@router.get("/metrics", response_class=PlainTextResponse, tags=["ops"])
async def metrics(service: Svc) -> PlainTextResponse:
    return PlainTextResponse(
        service.engine.metrics.text(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


# The console (`/ui`): static files shipped in the package, which read this same API
# with the same token. Nothing on the page comes from another origin, and the
# policy says so; data is put on the page as text by the script, never as markup.
_UI_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
_UI_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self';"
    " img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none';"
    " frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@functools.cache
def _ui_file(name: str) -> bytes:
    return resources.files("acode_placement.ui").joinpath(name).read_bytes()


@open_router.get("/ui", include_in_schema=False)
async def console() -> Response:
    """The web console's page (it asks for the token itself; no data without it)."""
    return Response(_ui_file("index.html"), media_type="text/html; charset=utf-8",
                    headers=_UI_HEADERS)  # fmt: skip


@open_router.get("/ui/{name}", include_in_schema=False)
async def console_file(name: Annotated[str, Path(max_length=32)]) -> Response:
    if name not in _UI_FILES:
        raise HTTPException(404, f"no console file {name!r}")
    return Response(_ui_file(name), media_type=_UI_FILES[name], headers=_UI_HEADERS)


@open_router.get("/healthz", tags=["ops"])
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@open_router.get("/readyz", tags=["ops"])
async def readyz(
    service: Svc,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> JSONResponse:
    """Ready when the history and reservation database can be read and written (or
    there is none). Without the token the answer is `ready` or `not ready` alone;
    with it, a `detail` says why not (the server's log always does)."""
    cause = await asyncio.to_thread(_unready, service.engine)
    if cause is None:
        return AsciiJSONResponse({"status": "ready"})
    _log.warning("service.not_ready", cause=cause)
    body = {"status": "not ready"}
    if _token_ok(service, credentials):
        body["detail"] = cause
    return AsciiJSONResponse(body, status_code=503)


def _unready(engine: PlacementEngine) -> str | None:
    try:
        if engine.history is not None:
            engine.history.check()
        if engine.reservations is not None:
            engine.reservations.check()
    except PlacementError as exc:
        return str(exc)
    return None


def _body_model(request: Request) -> type[Model]:
    return DiscoverRequest if request.url.path.endswith(":discover") else PlacementRequest


def _history(engine: PlacementEngine) -> Any:
    if engine.history is None:
        raise InputError("the history is off (historyEnabled: false)")
    return engine.history


def _leases(engine: PlacementEngine) -> Any:
    if engine.reservations is None:
        raise InputError("this server keeps no reservations")
    return engine.reservations
