"""A Python client for the HTTP service: the same JSON as the command line.

from acode_placement.client import PlacementClient
with PlacementClient("http://127.0.0.1:8790", token="...") as client:
    result = client.place(task)          # the `place --json` object
    client.release(result["reservation"]["id"])
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

import httpx

from acode_placement.config import TOKEN_ENV
from acode_placement.errors import PlacementError
from acode_placement.models import PlacementOptions, Task, TaskRequirements


class ServiceError(PlacementError):
    """The service refused or failed a request; the message is its problem detail."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{detail} (HTTP {status})")
        self.status = status
        self.detail = detail


class PlacementClient:
    """Calls one acode-placement service. The token defaults to $ACODE_PLACEMENT_TOKEN."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 60.0) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
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
        except httpx.HTTPError as exc:
            raise ServiceError(0, f"cannot reach {self._http.base_url}: {exc}") from None
        if response.is_success:
            return response.json()
        try:
            detail = str(response.json().get("detail", response.text))
        except ValueError:
            detail = response.text.strip() or response.reason_phrase
        raise ServiceError(response.status_code, detail)


def _body(task: Task | TaskRequirements, options: PlacementOptions | None) -> dict[str, Any]:
    key = "task" if isinstance(task, Task) else "requirements"
    body: dict[str, Any] = {key: task.model_dump(mode="json", exclude_none=True)}
    if options is not None:
        body["options"] = options.model_dump(mode="json")
    return body
