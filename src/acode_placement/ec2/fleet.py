"""EC2 targets made concrete: fleets expanded, every instance type priced, and
instance types discovered (the EC2 API first, the shipped catalog when it cannot
be asked)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from acode_placement.discovery.parse import ProbeReport
from acode_placement.discovery.probes import ProbeError
from acode_placement.ec2.catalog import Catalog, CatalogRow
from acode_placement.ec2.types import InstanceType
from acode_placement.errors import AwsApiError
from acode_placement.models import (
    AnyTarget,
    AwsApi,
    Capabilities,
    DiscoveryStatus,
    Ec2Target,
    PriceQuote,
)
from acode_placement.telemetry import get_logger

if TYPE_CHECKING:  # boto3 loads only when an Ec2Api is made (PlacementEngine.default)
    from acode_placement.ec2.api import Ec2Api

_log = get_logger("acode_placement.ec2")
PRICE_LIST = "AWS Price List API"
SPOT_HISTORY = "EC2 spot price history"
CATALOG = "catalog"


class PriceBook:
    """Hourly prices: declared, else the AWS APIs, else the shipped catalog."""

    def __init__(self, api: Ec2Api | None, catalog: Catalog) -> None:
        self.api = api
        self.catalog = catalog

    async def quote(self, target: Ec2Target) -> PriceQuote:
        if target.hourly_rate is not None:
            return PriceQuote(target.hourly_rate, "declared", spot=target.spot)
        name, region = str(target.instance_type), target.region
        note = None
        if self.api is not None:
            try:
                table = await (
                    self.api.spot_prices(region) if target.spot else self.api.prices(region)
                )
            except AwsApiError as exc:
                note = f"{'spot' if target.spot else 'price'} API: {exc}"
            else:
                if name in table:
                    source = SPOT_HISTORY if target.spot else PRICE_LIST
                    today = datetime.now(UTC).date()
                    return PriceQuote(table[name], source, today, target.spot)
                note = (
                    f"{name} has no {'spot ' if target.spot else ''}price in the API for {region}"
                )
        row = self.catalog.row(region, name)
        hourly = None if row is None else (row.spot_price if target.spot else row.price)
        if row is None or hourly is None:
            what = "spot price" if target.spot else "price"
            missing = (
                f"no {what} for {name} in {region} in the shipped catalog"
                " (give the target an hourlyRate, or let the Price List API answer:"
                " ec2Api with AWS credentials)"
            )
            return PriceQuote(None, "unknown", spot=target.spot, note=_join(note, missing))
        return PriceQuote(hourly, CATALOG, row.price_date, target.spot, note)


class Ec2Resolver:
    """Expands fleets into one target per instance type, and prices every ec2 target.

    Results are kept per target object, so a loop placing on the same list pays
    once; a fleet's `maxHourlyRate` leaves out the dearer (and unpriced) types.
    """

    def __init__(self, api: Ec2Api | None, catalog: Catalog, prices: PriceBook | None = None):
        self.api = api
        self.catalog = catalog
        self.prices = prices or PriceBook(api, catalog)
        self._done: dict[int, tuple[Ec2Target, list[Ec2Target]]] = {}

    async def resolve(self, targets: Sequence[AnyTarget]) -> list[AnyTarget]:
        resolved: list[AnyTarget] = []
        for target in targets:
            if not isinstance(target, Ec2Target):
                resolved.append(target)
                continue
            kept = self._done.get(id(target))
            if kept is None or kept[0] is not target:
                kept = (target, await self._members(target))
                self._done[id(target)] = kept
            resolved.extend(kept[1])
        return resolved

    async def _members(self, target: Ec2Target) -> list[Ec2Target]:
        if not target.is_fleet:
            return [target.priced(await self.prices.quote(target))]
        members = []
        for name in await self.instance_types(target):
            member = Ec2Target(
                id=f"{target.id}/{name}",
                instance_type=name,
                region=target.region,
                labels=target.labels,
                capabilities=target.capabilities,
                spot=target.spot,
            )
            quote = await self.prices.quote(member)
            limit = target.max_hourly_rate
            if limit is not None and (quote.hourly is None or quote.hourly > limit):
                continue
            members.append(member.priced(quote))
        return members

    async def instance_types(self, fleet: Ec2Target) -> list[str]:
        """The instance type names a fleet stands for, in name order."""
        if isinstance(fleet.instance_types, tuple):
            return sorted(set(fleet.instance_types))  # named: each kept, known or not
        try:
            known = await self._from_api(fleet)
        except AwsApiError as exc:
            _log.info("ec2.fleet_from_catalog", fleet=fleet.id, reason=str(exc))
            known = self._from_catalog(fleet)
        return sorted(known)

    async def _from_api(self, fleet: Ec2Target) -> set[str]:
        if self.api is None:
            raise AwsApiError("no AWS API configured")
        if fleet.instance_families == "*" or fleet.instance_types == "*":
            return set(await self.api.current_generation(fleet.region))
        families = fleet.instance_families if isinstance(fleet.instance_families, tuple) else ()
        offered = await self.api.offered(fleet.region)
        found = await self.api.describe(fleet.region, [f"{f}.*" for f in families])
        return {name for name in found if name in offered}

    def _from_catalog(self, fleet: Ec2Target) -> set[str]:
        types = self.catalog.types(fleet.region)
        if fleet.instance_families == "*" or fleet.instance_types == "*":
            return {n for n, t in types.items() if t.current_generation is not False}
        families = set(fleet.instance_families or ())
        return {n for n, t in types.items() if t.family in families}


class Ec2Prober:
    """Discovers an instance type's capabilities: DescribeInstanceTypes, else the
    shipped catalog (and says which). Tools cannot be discovered on an instance
    type: they come from what the target declares."""

    def __init__(self, api: Ec2Api | None, catalog: Catalog) -> None:
        self.api = api
        self.catalog = catalog

    async def probe(
        self, target: AnyTarget, tools: frozenset[str], *, tools_only: bool = False
    ) -> ProbeReport:
        if not isinstance(target, Ec2Target) or target.instance_type is None:
            raise TypeError(f"Ec2Prober cannot probe {target.id}")
        name, region = target.instance_type, target.region
        if tools_only:  # nothing to look at: declared tools are all there is
            caps = Capabilities(discovered_at=datetime.now(UTC))
            return ProbeReport(caps, tools, False, source="ec2-api")
        reason = "no AWS API configured"
        if self.api is not None:
            try:
                found = await self.api.describe(region, [name])
                offered = await self.api.offered(region)
            except AwsApiError as exc:
                reason = f"EC2 API: {exc}"
            else:
                if name not in found or name not in offered:
                    raise ProbeError(
                        DiscoveryStatus.UNVERIFIED,
                        f"instance type {name} is not offered in {region} (EC2 API)",
                    )
                return ProbeReport(
                    _stamped(found[name]), tools, True, ("from the EC2 API",), source="ec2-api"
                )
        row = self.catalog.row(region, name)
        if row is None:
            raise ProbeError(
                DiscoveryStatus.UNREACHABLE,
                f"{reason}; {name} in {region} is not in the shipped catalog either",
            )
        return _from_catalog(row, tools, reason)

    def at_once(self, target: AnyTarget) -> ProbeReport | None:
        """The shipped catalog's facts of the type, for a decision that will not wait
        for the EC2 API (`probe` asks it in the background); None when the catalog
        does not list the type."""
        if not isinstance(target, Ec2Target) or target.instance_type is None:
            return None
        row = self.catalog.row(target.region, target.instance_type)
        if row is None:
            return None
        reason = None  # the API is asked in the background
        if self.api is None or self.api.mode is AwsApi.OFF:
            reason = "no AWS API configured" if self.api is None else self.api.unusable()
        return _from_catalog(row, frozenset(), reason)


def _from_catalog(row: CatalogRow, tools: frozenset[str], reason: str | None) -> ProbeReport:
    """A type's facts from its catalog row, with a note saying why the catalog (or,
    with no `reason`, that the EC2 API is being asked meanwhile) and of when."""
    dated = f", prices of {row.price_date.isoformat()}" if row.price_date else ""
    note = f"capabilities from the shipped catalog{dated}"
    note = f"{reason}: {note}" if reason is not None else f"{note}; asking the EC2 API"
    return ProbeReport(_stamped(row.instance), tools, True, (note,), source="catalog")


def _stamped(instance: InstanceType) -> Capabilities:
    return instance.capabilities().model_copy(update={"discovered_at": datetime.now(UTC)})


def _join(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second
