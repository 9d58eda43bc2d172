"""The EC2 catalog shipped with the package: instance types and prices per region.

Built by `scripts/build_ec2_catalog.py` from public data; its header says where
every column came from and when. It is the fallback when the EC2 API or the Price
List API cannot be asked, and the reference the tests check choices against.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from importlib import resources

from acode_placement.discovery.parse import normalise_arch
from acode_placement.ec2.types import InstanceType

CATALOG = "catalog.csv"
OFFERINGS = "offerings.csv"  # the types each region offers (moto's recorded offerings)


@dataclass(frozen=True, slots=True)
class CatalogRow:
    instance: InstanceType
    region: str
    price: float | None
    spot_price: float | None
    price_date: date | None


class Catalog:
    """Instance types and prices by region, read once.

    With `offered` (region: the types it offers), a type a region offers but the
    price data covers elsewhere only is still a candidate there, with its specs
    (which do not vary by region) and no price: it says "price unknown", never
    vanishes."""

    def __init__(
        self,
        rows: list[CatalogRow],
        header: list[str],
        offered: dict[str, frozenset[str]] | None = None,
    ) -> None:
        self._rows: dict[str, dict[str, CatalogRow]] = {}
        self._specs: dict[str, InstanceType] = {}
        for row in rows:
            self._rows.setdefault(row.region, {})[row.instance.name] = row
            self._specs.setdefault(row.instance.name, row.instance)
        self._offered = offered or {}
        self.header = header

    @classmethod
    @functools.cache
    def shipped(cls) -> Catalog:
        folder = resources.files("acode_placement.ec2")
        catalog = cls.parse(folder.joinpath(CATALOG).read_text("utf-8"))
        offered = _offerings(folder.joinpath(OFFERINGS).read_text("utf-8"))
        return cls(list(catalog), catalog.header, offered)

    @classmethod
    def parse(cls, text: str) -> Catalog:
        lines = text.splitlines()
        header = [line[1:].strip() for line in lines if line.startswith("#")]
        body = (line for line in lines if line and not line.startswith("#"))
        return cls([_row(r) for r in csv.DictReader(body)], header)

    @property
    def source(self) -> str:
        """The header lines that say where the data came from, joined."""
        return " ".join(self.header)

    def regions(self) -> list[str]:
        return sorted(set(self._rows) | set(self._offered))

    def row(self, region: str, instance_type: str) -> CatalogRow | None:
        """The type in this region: priced when the data has its price there; offered
        there with its specs from another region and no price; else None."""
        row = self._rows.get(region, {}).get(instance_type)
        if row is not None:
            return row
        specs = self._specs.get(instance_type)
        if specs is None or instance_type not in self._offered.get(region, ()):
            return None
        return CatalogRow(specs, region, price=None, spot_price=None, price_date=None)

    def types(self, region: str) -> dict[str, InstanceType]:
        """Every type the region offers whose specs are known, priced or not."""
        found = {name: row.instance for name, row in self._rows.get(region, {}).items()}
        for name in self._offered.get(region, ()):
            specs = self._specs.get(name)
            if specs is not None:
                found.setdefault(name, specs)
        return found

    def unpriced(self, region: str) -> int:
        """How many types the region offers that the price data leaves without a price."""
        return len(self.types(region)) - len(self._rows.get(region, {}))

    def __iter__(self) -> Iterator[CatalogRow]:
        for rows in self._rows.values():
            yield from rows.values()


def _offerings(text: str) -> dict[str, frozenset[str]]:
    """`offerings.csv`: a region and the types it offers, space-separated."""
    body = (line for line in text.splitlines() if line and not line.startswith("#"))
    return {row["region"]: frozenset(row["instanceTypes"].split()) for row in csv.DictReader(body)}


def _row(raw: dict[str, str]) -> CatalogRow:
    current = raw["currentGeneration"]
    instance = InstanceType(
        name=raw["instanceType"],
        vcpus=float(raw["vcpus"]),
        memory_gib=float(raw["memoryGib"]),
        arch=normalise_arch(raw["arch"]),
        accelerator_maker=raw["acceleratorManufacturer"] or None,
        accelerator=raw["acceleratorName"] or None,
        accelerator_count=float(raw["acceleratorCount"] or 0),
        accelerator_memory_mib=float(raw["acceleratorMemoryMib"] or 0) or None,
        storage_gb=float(raw["storageGb"] or 0) or None,
        current_generation=None if current == "" else current == "1",
    )
    return CatalogRow(
        instance=instance,
        region=raw["region"],
        price=float(raw["price"]) if raw["price"] else None,
        spot_price=float(raw["spotPrice"]) if raw["spotPrice"] else None,
        price_date=date.fromisoformat(raw["priceDate"]) if raw["priceDate"] else None,
    )
