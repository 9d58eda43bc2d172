"""AWS on 127.0.0.1 for the tests: moto's EC2 in server mode, a Price List server
(moto has none) answering GetProducts from the shipped catalog's prices, and a
server that answers EC2 calls with faults (throttling, refusal, silence)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.server import ThreadedMotoServer

from acode_placement.ec2.catalog import Catalog


@contextlib.contextmanager
def moto_ec2() -> Iterator[str]:
    """moto's server on a free loopback port; yields its URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def price_list_item(instance_type: str, region: str, usd: float) -> str:
    """One Price List product in the API's shape (a JSON string in `PriceList`)."""
    sku = f"SKU{abs(hash((instance_type, region))) % 10**8:08d}"
    return json.dumps(
        {
            "product": {
                "productFamily": "Compute Instance",
                "sku": sku,
                "attributes": {
                    "instanceType": instance_type,
                    "regionCode": region,
                    "operatingSystem": "Linux",
                    "tenancy": "Shared",
                },
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    f"{sku}.JRTCKXETXF": {
                        "priceDimensions": {
                            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "pricePerUnit": {"USD": f"{usd:.10f}"},
                                "description": f"${usd} per On Demand Linux {instance_type}",
                            }
                        },
                        "sku": sku,
                    }
                }
            },
            "version": "20261101000000",
        }
    )


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def price_list(markup: float = 1.0, page_size: int = 100) -> Iterator[tuple[str, list[Any]]]:
    """A GetProducts server: the shipped catalog's on-demand prices x `markup`.

    Yields its URL and the list of requests it answered (their JSON bodies)."""
    catalog = Catalog.shipped()
    seen: list[Any] = []

    class Handler(_Quiet):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            terms = {f["Field"]: f["Value"] for f in body.get("Filters", [])}
            region = terms.get("regionCode", "")
            items = [
                price_list_item(row.instance.name, region, row.price * markup)
                for row in catalog
                if row.region == region and row.price is not None
            ]
            start = int(body.get("NextToken") or 0)
            page = {"FormatVersion": "aws_v1", "PriceList": items[start : start + page_size]}
            if start + page_size < len(items):
                page["NextToken"] = str(start + page_size)
            data = json.dumps(page).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with _serve(Handler) as url:
        yield url, seen


@contextlib.contextmanager
def ec2_fault(kind: str) -> Iterator[str]:
    """An EC2 endpoint that fails every call: `throttle`, `refuse`, `broken` or `silent`."""
    errors = {
        "throttle": (503, "RequestLimitExceeded", "Request limit exceeded."),
        "refuse": (401, "AuthFailure", "AWS was not able to validate the provided credentials."),
        "broken": (500, "InternalError", "An internal error has occurred."),
    }

    class Handler(_Quiet):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if kind == "silent":
                time.sleep(5)
                return
            status, code, message = errors[kind]
            data = (
                f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
                f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                f"<RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with _serve(Handler) as url:
        yield url
