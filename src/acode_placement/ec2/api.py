"""The AWS APIs, through boto3: instance types, region offerings, prices.

Calls run in worker threads with botocore's connect and read timeouts and two
tries at most, so a slow or throttling API costs seconds, not minutes. Every
failure becomes an `AwsApiError` with a message a person can act on; credentials
are never logged or printed. Endpoints follow boto3's own configuration
(`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL_PRICING`), which is how the tests point
it at an emulator on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from acode_placement.ec2.types import InstanceType
from acode_placement.errors import AwsApiError
from acode_placement.models import AwsApi

if TYPE_CHECKING:  # boto3 itself loads on the first call to AWS, not on import
    import boto3
    from botocore.config import Config
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_pricing import PricingClient

T = TypeVar("T")
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
}
_REFUSED = {"AuthFailure", "UnauthorizedOperation", "AccessDenied", "AccessDeniedException"}
_FILTER_VALUES = 100  # values per filter in one DescribeInstanceTypes call
# The Price List API lives in a few regions only; us-east-1 answers for all.
PRICING_REGION = "us-east-1"
# Price List location names are not region codes; the filter takes regionCode.
_PRICE_FILTERS = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "licenseModel": "No License required",
}


class Ec2Api:
    """EC2 and Price List calls for any region, with results kept per region."""

    def __init__(self, mode: AwsApi = AwsApi.AUTO, timeout: float = 3.0) -> None:
        self.mode = mode
        self.timeout = timeout
        self._session: boto3.session.Session | None = None  # made on the first call
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._types: dict[str, dict[str, InstanceType]] = {}
        self._asked: dict[str, set[str]] = {}
        self._offered: dict[str, frozenset[str]] = {}
        self._prices: dict[str, dict[str, float]] = {}
        self._spot: dict[str, dict[str, float]] = {}
        self._unusable: str | None = None
        self._checked = False

    # ------------------------------------------------------------------ credentials

    def unusable(self) -> str | None:
        """Why the API will not be asked (off, no credentials); None when it will."""
        if self.mode is AwsApi.OFF:
            return "AWS API use is off (ec2Api: off)"
        if not self._checked:
            self._checked = True
            self._unusable = self._credentials_problem()
        return self._unusable

    def _credentials_problem(self) -> str | None:
        import botocore.session  # noqa: PLC0415
        from botocore.credentials import create_credential_resolver  # noqa: PLC0415

        session = botocore.session.get_session()
        resolver = create_credential_resolver(session)
        if self.mode is AwsApi.AUTO:
            resolver.remove("iam-role")  # no silent second-long call to 169.254.169.254
        try:
            found = resolver.load_credentials()
        except (botocore.exceptions.BotoCoreError, OSError, ValueError) as exc:
            return f"AWS credentials could not be read ({type(exc).__name__})"
        if found is None:
            return "no AWS credentials configured"
        return None

    # -------------------------------------------------------------------- queries

    async def describe(self, region: str, names: Iterable[str]) -> dict[str, InstanceType]:
        """Instance types by name (`g5.xlarge`, or a pattern like `g5.*`), as EC2
        describes them; a name EC2 does not know is simply absent."""
        names = tuple(names)
        known = self._types.get(region, {})
        asked = self._asked.get(region, set())
        wanted = sorted(n for n in set(names) - asked if n not in known)
        if wanted:
            found = await self._call(lambda: self._describe(region, wanted))
            self._types.setdefault(region, {}).update(found)
            self._asked.setdefault(region, set()).update(wanted)
        known = self._types.get(region, {})
        return {name: t for name, t in known.items() if _matches_any(name, names)}

    async def current_generation(self, region: str) -> dict[str, InstanceType]:
        """Every current-generation instance type offered in the region."""
        offered = await self.offered(region)
        if "*current*" not in self._asked.get(region, set()):
            found = await self._call(lambda: self._describe_current(region))
            self._types.setdefault(region, {}).update(found)
            self._asked.setdefault(region, set()).add("*current*")
        return {
            n: t
            for n, t in self._types.get(region, {}).items()
            if t.current_generation and n in offered
        }

    async def offered(self, region: str) -> frozenset[str]:
        """The instance types the region offers."""
        if region not in self._offered:
            self._offered[region] = await self._call(lambda: self._offerings(region))
        return self._offered[region]

    async def prices(self, region: str) -> dict[str, float]:
        """Linux on-demand USD/hour by instance type, from the Price List API."""
        if region not in self._prices:
            self._prices[region] = await self._call(lambda: self._price_list(region))
        return self._prices[region]

    async def spot_prices(self, region: str) -> dict[str, float]:
        """The lowest current Linux spot price per instance type in the region."""
        if region not in self._spot:
            self._spot[region] = await self._call(lambda: self._spot_history(region))
        return self._spot[region]

    # ------------------------------------------------------------------ internals

    async def _call(self, work: Callable[[], T]) -> T:
        problem = self.unusable()
        if problem is not None:
            raise AwsApiError(problem)
        from botocore import exceptions as aws  # noqa: PLC0415

        try:
            return await asyncio.to_thread(work)
        except aws.NoCredentialsError:
            raise AwsApiError("no AWS credentials configured") from None
        except (aws.ConnectTimeoutError, aws.ReadTimeoutError):
            raise AwsApiError(f"no answer from AWS within {self.timeout:g} s") from None
        except aws.EndpointConnectionError as exc:
            raise AwsApiError(f"cannot reach {exc.kwargs.get('endpoint_url', 'AWS')}") from None
        except aws.ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "error"))
            if code in _THROTTLED:
                raise AwsApiError(f"AWS is throttling requests ({code})") from None
            if code in _REFUSED:
                raise AwsApiError(f"AWS refused the credentials ({code})") from None
            message = str(error.get("Message", "")).strip().rstrip(".")
            raise AwsApiError(f"AWS error {code}" + (f" ({message})" if message else "")) from None
        except aws.BotoCoreError as exc:
            raise AwsApiError(f"AWS call failed: {type(exc).__name__}") from None

    def _ec2(self, region: str) -> EC2Client:
        return self._cached(
            ("ec2", region), lambda session, config: session.client("ec2", region, config=config)
        )

    def _pricing(self) -> PricingClient:
        return self._cached(
            ("pricing", PRICING_REGION),
            lambda session, config: session.client("pricing", PRICING_REGION, config=config),
        )

    def _cached(
        self, key: tuple[str, str], make: Callable[[boto3.session.Session, Config], T]
    ) -> T:
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        with self._lock:  # boto3 sessions are not thread-safe; clients are
            if key not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                config = Config(
                    connect_timeout=self.timeout,
                    read_timeout=self.timeout,
                    retries={"max_attempts": 2, "mode": "standard"},
                )
                self._clients[key] = make(self._session, config)
            client: T = self._clients[key]
            return client

    def _describe(self, region: str, names: list[str]) -> dict[str, InstanceType]:
        found: dict[str, InstanceType] = {}
        for start in range(0, len(names), _FILTER_VALUES):
            found.update(
                self._describe_where(region, "instance-type", names[start : start + _FILTER_VALUES])
            )
        return found

    def _describe_current(self, region: str) -> dict[str, InstanceType]:
        return self._describe_where(region, "current-generation", ["true"])

    def _describe_where(self, region: str, name: str, values: list[str]) -> dict[str, InstanceType]:
        paginator = self._ec2(region).get_paginator("describe_instance_types")
        found: dict[str, InstanceType] = {}
        for page in paginator.paginate(Filters=[{"Name": name, "Values": values}]):
            for item in page["InstanceTypes"]:
                found[item["InstanceType"]] = InstanceType.from_api(item)
        return found

    def _offerings(self, region: str) -> frozenset[str]:
        client = self._ec2(region)
        pages = client.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="region", Filters=[{"Name": "location", "Values": [region]}]
        )
        return frozenset(o["InstanceType"] for page in pages for o in page["InstanceTypeOfferings"])

    def _price_list(self, region: str) -> dict[str, float]:
        terms = {"regionCode": region, **_PRICE_FILTERS}
        paginator = self._pricing().get_paginator("get_products")
        prices: dict[str, float] = {}
        for page in paginator.paginate(
            ServiceCode="AmazonEC2",
            Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in terms.items()],
        ):
            for item in page["PriceList"]:
                parsed = on_demand_price(item)
                if parsed is not None:
                    prices.setdefault(parsed[0], parsed[1])
        return prices

    def _spot_history(self, region: str) -> dict[str, float]:
        client = self._ec2(region)
        pages = client.get_paginator("describe_spot_price_history").paginate(
            StartTime=datetime.now(UTC), ProductDescriptions=["Linux/UNIX"]
        )
        lowest: dict[str, float] = {}
        for page in pages:
            for offer in page["SpotPriceHistory"]:
                name, price = offer["InstanceType"], float(offer["SpotPrice"])
                lowest[name] = min(price, lowest.get(name, price))
        return lowest


def on_demand_price(item: str | dict[str, Any]) -> tuple[str, float] | None:
    """(instance type, USD/hour) from one Price List product, or None."""
    product = json.loads(item) if isinstance(item, str) else item
    name = product.get("product", {}).get("attributes", {}).get("instanceType")
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if name and usd is not None and dimension.get("unit") == "Hrs":
                return name, float(usd)
    return None


def _matches_any(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern == name or (pattern.endswith(".*") and name.startswith(pattern[:-1])):
            return True
    return False
