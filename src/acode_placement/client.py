"""A Python client for the HTTP service: the same JSON as the command line.

from acode_placement.client import PlacementClient
with PlacementClient("http://127.0.0.1:8790", token="...") as client:
    result = client.place(task)          # the `place --json` object
    client.release(result["reservation"]["id"])
"""

from __future__ import annotations

import os
import re
from types import TracebackType
from typing import Any

import httpx

from acode_placement.config import TOKEN_ENV
from acode_placement.errors import InputError, PlacementError
from acode_placement.models import PlacementOptions, Task, TaskRequirements

_HEADER_SAFE = re.compile(r"^[\x21-\x7e]{1,8192}$")


class ServiceError(PlacementError):
    """The service refused or failed a request; the message is its problem detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{detail} (HTTP {status})")
        self.status = status
        self.detail = detail


class PlacementClient:
    """Calls one acode-placement service. The token defaults to $ACODE_PLACEMENT_TOKEN."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV, "").strip() or None
        if token is not None and not _HEADER_SAFE.match(token):
            raise InputError(
                f"the token ({TOKEN_ENV}) has characters an HTTP header cannot carry"
                " (spaces, controls or non-ASCII); it is not shown"
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            raise InputError(
                f"--server: {url!r} is not a URL (e.g. http://127.0.0.1:8790)"
            ) from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise InputError(
                f"--server: {url!r} is not an http(s) URL (e.g. http://127.0.0.1:8790)"
            )
        self._where = str(parsed.copy_with(username=None, password=None, query=None, fragment=None))
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> PlacementClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def place(
        self,
        task: Task | TaskRequirements,
        options: PlacementOptions | None = None,
        *,
        reserve: bool = False,
        owner: str | None = None,
    ) -> dict[str, Any]:
        """Choose a target; with `reserve`, lease it (see the result's `reservation`)."""
        body = _body(task, options) | {"reserve": reserve}
        if owner:
            body["owner"] = owner
        result: dict[str, Any] = self._call("POST", "/v1/placements", json=body)
        return result

    def explain(
        self, task: Task | TaskRequirements, options: PlacementOptions | None = None
    ) -> Any:
        return self._call("POST", "/v1/placements:explain", json=_body(task, options))

    def history(self, **query: Any) -> Any:
        return self._call("GET", "/v1/placements", params=query)

    def decision(self, request_id: str) -> Any:
        return self._call("GET", f"/v1/placements/{request_id}")

    def reservations(self) -> Any:
        return self._call("GET", "/v1/reservations")

    def release(self, reservation_id: str) -> Any:
        return self._call("DELETE", f"/v1/reservations/{reservation_id}")

    def targets(self) -> Any:
        return self._call("GET", "/v1/targets")

    def discover(self, ids: list[str] | None = None, *, refresh: bool = False) -> Any:
        return self._call(
            "POST", "/v1/targets:discover", json={"ids": ids or [], "refresh": refresh}
        )

    def strategies(self) -> Any:
        return self._call("GET", "/v1/strategies")

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ServiceError(0, f"cannot reach {self._where}: {exc}") from None
        try:
            document = response.json()
        except ValueError:
            document = None
        if response.is_success:
            if document is None:
                raise ServiceError(response.status_code, f"{self._where} answered with no JSON")
            return document
        detail = document.get("detail") if isinstance(document, dict) else None
        if not isinstance(detail, str):  # not a problem detail: the status says enough
            detail = f"{response.reason_phrase or 'error'} (no problem detail)"
        raise ServiceError(response.status_code, detail)


def _body(task: Task | TaskRequirements, options: PlacementOptions | None) -> dict[str, Any]:
    key = "task" if isinstance(task, Task) else "requirements"
    body: dict[str, Any] = {key: task.model_dump(mode="json", exclude_none=True)}
    if options is not None:  # what the caller set; the server's settings give the rest
        body["options"] = options.model_dump(mode="json", exclude_unset=True)
    return body
