"""EC2 targets: instance types from the EC2 API (moto in server mode on 127.0.0.1),
prices from the Price List API or the shipped catalog, fleets, faults, and burst
choices checked against an independent reading of the catalog."""

from __future__ import annotations

import asyncio
import csv
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from acode_placement import (
    Capabilities,
    CapabilityCache,
    Discovery,
    Ec2Target,
    PlacementEngine,
    PlacementOptions,
    PlacementSettings,
    ProbeError,
    TaskRequirements,
    load_targets,
)
from acode_placement.config import read_targets
from acode_placement.ec2.api import AwsApiError, Ec2Api
from acode_placement.ec2.catalog import Catalog
from acode_placement.ec2.fleet import Ec2Prober, Ec2Resolver, PriceBook
from acode_placement.errors import InputError
from acode_placement.models import AwsApi, TargetKind
from tests.aws import ec2_fault, moto_ec2, price_list
from tests.conftest import Cli

CATALOG_FILE = Path(__file__).parent.parent / "src" / "acode_placement" / "ec2" / "catalog.csv"
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_ec2() as url:
        yield url


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, moto_url: str) -> str:
    """Credentials and endpoints that lead only to moto on 127.0.0.1."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", "http://127.0.0.1:9")  # refused
    return moto_url


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def probe(api: Ec2Api | None, instance_type: str, region: str = "us-east-1") -> Any:
    target = Ec2Target(id="t", instance_type=instance_type, region=region)
    return run(Ec2Prober(api, Catalog.shipped()).probe(target, frozenset()))


class TestInstanceTypesFromTheApi:
    def test_a_gpu_type(self, aws: str) -> None:
        report = probe(Ec2Api(AwsApi.ON), "g5.xlarge")
        caps = report.capabilities
        assert (caps.cpu, caps.memory_gb, caps.disk_gb, caps.os, caps.arch) == (
            4,
            16,
            250,
            "linux",
            "x64",
        )
        assert caps.gpu is not None
        assert (caps.gpu.type, caps.gpu.model, caps.gpu.count) == ("nvidia", "A10G", 1)
        assert caps.gpu.vram_gb == 22.4  # 22888 MiB as EC2 reports it
        assert report.notes == ("from the EC2 API",)

    def test_a_non_gpu_arm_type(self, aws: str) -> None:
        caps = probe(Ec2Api(AwsApi.ON), "m7g.large").capabilities
        assert (caps.cpu, caps.memory_gb, caps.arch, caps.gpu, caps.disk_gb) == (
            2,
            8,
            "arm64",
            None,
            None,
        )

    def test_a_fraction_of_a_gpu_never_counts_as_one(self, aws: str) -> None:
        caps = probe(Ec2Api(AwsApi.ON), "g6f.2xlarge").capabilities
        assert caps.gpu is not None and caps.gpu.count == 0.25 and caps.gpu.model == "L4"
        target = Ec2Target(
            id="slice", instance_type="g6f.2xlarge", hourly_rate=0.5, capabilities=caps
        )
        engine = PlacementEngine()
        options = PlacementOptions(discovery_enabled=False)
        whole = TaskRequirements(gpu={"type": "nvidia"})
        result = run(engine.place(whole, [target], options))
        assert not result.success
        assert "gpu count 0.25 < 1 (a fraction of one GPU)" in (result.failure_message or "")
        quarter = TaskRequirements(gpu={"type": "nvidia", "count": 0.25})
        assert run(engine.place(quarter, [target], options)).success

    def test_inferentia_is_an_accelerator_not_a_gpu(self, aws: str) -> None:
        caps = probe(Ec2Api(AwsApi.ON), "inf2.xlarge").capabilities
        assert caps.gpu is None
        assert caps.custom == {"accelerator": "Inferentia2", "acceleratorCount": 1.0}

    def test_an_unknown_type_is_a_clear_failure(self, aws: str) -> None:
        with pytest.raises(ProbeError, match=r"x9z\.huge is not offered in us-east-1 \(EC2 API\)"):
            probe(Ec2Api(AwsApi.ON), "x9z.huge")

    def test_a_type_the_region_does_not_offer(self, aws: str) -> None:
        api = Ec2Api(AwsApi.ON)
        east = run(api.offered("us-east-1"))
        south = run(api.offered("af-south-1"))
        missing = sorted(east - south)[0]
        assert probe(api, missing, "us-east-1").capabilities.cpu
        with pytest.raises(ProbeError, match=f"{missing} is not offered in af-south-1"):
            probe(api, missing, "af-south-1")

    def test_an_unknown_type_is_excluded_and_the_rest_placed(self, aws: str) -> None:
        engine = PlacementEngine.default(PlacementSettings(ec2_api=AwsApi.ON))
        fleet = [
            Ec2Target(id="typo", instance_type="g5.xlargee", hourly_rate=1),
            Ec2Target(id="good", instance_type="g5.xlarge", hourly_rate=1),
        ]
        # the API's answer, not the deadline, is what is tested: wait for it
        options = PlacementOptions(decision_timeout=30)
        result = run(engine.place(TaskRequirements(cpu=2), fleet, options))
        assert result.selected is not None and result.selected.id == "good"
        typo = result.all_scores[0]
        assert not typo.eligible and typo.status == "unverified"
        assert "g5.xlargee is not offered in us-east-1" in (typo.cause or "")


class TestFaults:
    @pytest.mark.parametrize(
        ("kind", "message"),
        [
            ("throttle", "AWS is throttling requests (RequestLimitExceeded)"),
            ("refuse", "AWS refused the credentials (AuthFailure)"),
            ("broken", "AWS error InternalError (An internal error has occurred)"),
            ("silent", "no answer from AWS within 0.5 s"),
        ],
    )
    def test_api_faults_fall_back_to_the_catalog_and_say_why(
        self, aws: str, monkeypatch: pytest.MonkeyPatch, kind: str, message: str
    ) -> None:
        with ec2_fault(kind) as url:
            monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", url)
            started = time.perf_counter()
            report = probe(Ec2Api(AwsApi.ON, timeout=0.5), "g5.xlarge")
            elapsed = time.perf_counter() - started
        (note,) = report.notes
        assert note == (
            f"EC2 API: {message}: capabilities from the shipped catalog, prices of 2026-01-21"
        )
        assert report.source == "catalog"
        assert report.capabilities.gpu.vram_gb == 24  # the catalog's 24576 MiB
        assert elapsed < 10

    def test_a_decision_uses_the_catalog_at_once_while_the_api_is_asked(self, aws: str) -> None:
        engine = PlacementEngine.default(PlacementSettings(ec2_api=AwsApi.ON))
        fleet = [Ec2Target(id="g5", instance_type="g5.xlarge")]
        options = PlacementOptions(decision_timeout=0.001)  # no time to ask the API

        async def twice() -> tuple[Any, Any]:
            first = await engine.place(TaskRequirements(gpu={"type": "nvidia"}), fleet, options)
            await engine.settle(30)
            second = await engine.place(TaskRequirements(gpu={"type": "nvidia"}), fleet, options)
            return first, second

        first, second = run(twice())
        assert first.success and first.selected.status == "catalog"
        assert first.selected.cause == (
            "capabilities from the shipped catalog, prices of 2026-01-21; asking the EC2 API"
        )
        assert first.selected.capabilities.gpu.model == "A10G"
        assert second.selected.status == "cached"  # the API's answer, once it came

    def test_a_fault_degrades_a_placement_and_never_crashes_it(
        self, aws: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with ec2_fault("throttle") as url:
            monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", url)
            engine = PlacementEngine.default(PlacementSettings(ec2_api=AwsApi.ON))
            fleet = [Ec2Target(id="g5", instance_type="g5.xlarge")]
            result = run(engine.place(TaskRequirements(gpu={"type": "nvidia"}), fleet))
        assert result.success
        chosen = result.selected_target
        assert isinstance(chosen, Ec2Target) and chosen.price is not None
        assert chosen.price.source == "catalog" and chosen.hourly_rate == 1.006

    def test_unknown_everywhere_is_excluded_with_both_causes(self) -> None:
        with pytest.raises(ProbeError, match=r"no AWS credentials configured.*not in the shipped"):
            probe(Ec2Api(AwsApi.AUTO), "x9z.huge")

    def test_without_credentials_nothing_is_asked_and_it_is_said(self) -> None:
        api = Ec2Api(AwsApi.AUTO)
        started = time.perf_counter()
        assert api.unusable() == "no AWS credentials configured"
        report = probe(api, "g4dn.xlarge")
        assert time.perf_counter() - started < 2  # no instance-metadata wait
        assert report.notes == (
            "EC2 API: no AWS credentials configured: capabilities from the shipped catalog,"
            " prices of 2026-01-21",
        )
        with pytest.raises(AwsApiError, match="no AWS credentials"):
            run(api.offered("us-east-1"))

    def test_off_means_the_catalog_only(self, aws: str) -> None:
        assert Ec2Api(AwsApi.OFF).unusable() == "AWS API use is off (ec2Api: off)"

    def test_credentials_never_reach_the_logs_or_the_output(
        self, aws: str, cli: Cli, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            yaml.safe_dump({"targets": [{"id": "b", "type": "ec2", "instanceFamilies": ["g5"]}]})
        )
        config = tmp_path / "placement.yaml"
        config.write_text(yaml.safe_dump({"placement": {"ec2Api": "on"}}))
        caplog.set_level(logging.DEBUG)
        code, out, err = cli(
            "--log-level", "debug", "targets", "--targets", targets, "--config", config
        )
        assert code == 0 and "b/g5.xlarge" in out
        ours = [r.getMessage() for r in caplog.records if r.name.startswith("acode_placement")]
        assert ours  # the debug run did log
        for text in (out, err, *ours):
            assert SECRET not in text and "AKIAIOSFODNN7EXAMPLE" not in text


class TestPrices:
    def test_the_price_list_api_first(self, aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
        with price_list(markup=1.1, page_size=50) as (url, seen):
            monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", url)
            book = PriceBook(Ec2Api(AwsApi.ON), Catalog.shipped())
            quote = run(book.quote(Ec2Target(id="g", instance_type="g5.xlarge")))
            again = run(book.quote(Ec2Target(id="h", instance_type="m7i.large")))
        assert quote.source == "AWS Price List API" and quote.hourly == pytest.approx(1.1066)
        assert again.hourly == pytest.approx(0.1008 * 1.1)
        # one region's prices in pages of 50, asked once, with the Linux on-demand filters
        assert len(seen) > 1 and all(r["ServiceCode"] == "AmazonEC2" for r in seen)
        filters = {f["Field"]: f["Value"] for f in seen[0]["Filters"]}
        assert filters["regionCode"] == "us-east-1" and filters["operatingSystem"] == "Linux"
        assert len({r.get("NextToken") for r in seen}) == len(seen)

    def test_an_unreachable_price_list_falls_back_to_the_catalog(self, aws: str) -> None:
        book = PriceBook(Ec2Api(AwsApi.ON, timeout=1), Catalog.shipped())
        quote = run(book.quote(Ec2Target(id="g", instance_type="g5.xlarge")))
        assert (quote.source, quote.hourly, str(quote.as_of)) == ("catalog", 1.006, "2026-01-21")
        assert quote.note is not None and quote.note.startswith("price API: cannot reach")

    def test_spot_prices_from_the_api_then_the_catalog(self, aws: str) -> None:
        book = PriceBook(Ec2Api(AwsApi.ON), Catalog.shipped())
        spot = Ec2Target(id="s", instance_type="m7i.large", spot=True)
        quote = run(book.quote(spot))
        assert quote.source == "EC2 spot price history" and quote.spot
        offline = run(PriceBook(None, Catalog.shipped()).quote(spot))
        assert (offline.source, offline.hourly) == ("catalog", 0.0643)
        no_spot = run(
            PriceBook(None, Catalog.shipped()).quote(
                Ec2Target(id="g", instance_type="g5.xlarge", spot=True)
            )
        )
        assert no_spot.hourly is None and "no spot price for g5.xlarge" in (no_spot.note or "")

    def test_a_declared_rate_wins(self) -> None:
        quote = run(
            PriceBook(None, Catalog.shipped()).quote(
                Ec2Target(id="g", instance_type="g5.xlarge", hourly_rate=0.9)
            )
        )
        assert (quote.source, quote.hourly) == ("declared", 0.9)


class TestFleets:
    def test_families_from_the_api(self, aws: str) -> None:
        api = Ec2Api(AwsApi.ON)
        resolver = Ec2Resolver(api, Catalog.shipped())
        fleet = Ec2Target(id="burst", instance_families=["g5", "g4dn"])
        members = run(resolver.resolve([fleet]))
        names = [m.instance_type for m in members]
        offered = run(api.offered("us-east-1"))
        assert names == sorted(n for n in offered if n.split(".")[0] in ("g5", "g4dn"))
        assert all(m.id == f"burst/{m.instance_type}" for m in members)

    def test_every_current_generation_type_from_the_api(self, aws: str) -> None:
        # moto answers a whole region slowly on a loaded machine; the default 3 s would
        # fall back to the catalog, whose generations differ from moto's (see data/)
        api = Ec2Api(AwsApi.ON, timeout=60)
        members = run(
            Ec2Resolver(api, Catalog.shipped()).resolve(
                [Ec2Target(id="all", instance_types="*", region="eu-north-1")]
            )
        )
        current = run(api.current_generation("eu-north-1"))
        assert {m.instance_type for m in members} == set(current)
        assert len(members) > 100

    def test_max_hourly_rate_leaves_out_dearer_and_unpriced_types(self) -> None:
        resolver = Ec2Resolver(None, Catalog.shipped())
        fleet = Ec2Target(id="b", instance_families=["g5", "p4d"], max_hourly_rate=2.0)
        members = run(resolver.resolve([fleet]))
        assert members and all(m.hourly_rate is not None and m.hourly_rate <= 2 for m in members)
        assert not any(m.instance_type.startswith("p4d") for m in members)

    def test_named_types_are_kept_even_when_unknown(self) -> None:
        resolver = Ec2Resolver(None, Catalog.shipped())
        fleet = Ec2Target(id="b", instance_types=["g5.xlarge", "nope.large"])
        members = run(resolver.resolve([fleet]))
        assert [m.id for m in members] == ["b/g5.xlarge", "b/nope.large"]
        assert members[1].price is not None and members[1].price.source == "unknown"

    def test_the_declared_capabilities_of_a_fleet_fill_every_member(self) -> None:
        engine = PlacementEngine.default(PlacementSettings(ec2_api=AwsApi.OFF))
        fleet = Ec2Target(
            id="b",
            instance_families=["g5"],
            capabilities=Capabilities(tools=("docker",), disk_gb=200),
        )
        req = TaskRequirements(tools=["docker"], disk_gb=100, gpu={"type": "nvidia"})
        result = run(engine.place(req, [fleet], PlacementOptions(strategy="cost-optimized")))
        assert result.selected is not None and result.selected.id == "b/g5.xlarge"
        assert result.selected.capabilities.tools == ("docker",)
        assert result.selected.capabilities.disk_gb == 250  # discovered instance store

    @pytest.mark.parametrize(
        ("entry", "message"),
        [
            ({"instanceType": "g5.xlarge", "instanceFamilies": ["g5"]}, "give exactly one of"),
            ({}, "give exactly one of instanceType, instanceTypes, instanceFamilies"),
            ({"instanceFamilies": ["g5"], "hourlyRate": 1}, "a fleet takes maxHourlyRate"),
            ({"instanceType": "g5.xlarge", "maxHourlyRate": 1}, "maxHourlyRate is for fleets"),
            ({"instanceFamilies": []}, "at least one instance type or family"),
            ({"instanceTypes": ["g5 xlarge"]}, "invalid instance type 'g5 xlarge'"),
            ({"instanceType": "g5.xlarge", "region": "mars"}, "region"),
        ],
    )
    def test_bad_fleet_entries_are_one_line_errors(
        self, tmp_path: Path, entry: dict[str, Any], message: str
    ) -> None:
        path = tmp_path / "targets.yaml"
        path.write_text(yaml.safe_dump({"targets": [{"id": "b", "type": "ec2", **entry}]}))
        with pytest.raises(InputError, match=message) as caught:
            read_targets(path)
        assert re.match(rf"{re.escape(str(path))}:\d+: targets\[0\][\w.\[\]]*: ", str(caught.value))
        assert "tuple[" not in str(caught.value) and "\n" not in str(caught.value)


def catalog_rows(region: str) -> list[dict[str, str]]:
    """The shipped catalog read with nothing but the csv module (the independent side)."""
    lines = [line for line in CATALOG_FILE.read_text().splitlines() if not line.startswith("#")]
    return [r for r in csv.DictReader(lines) if r["region"] == region]


def cheapest(region: str, fits: Any) -> str:
    rows = [r for r in catalog_rows(region) if r["price"] and r["currentGeneration"] != "0"]
    best = min((float(r["price"]), r["instanceType"]) for r in rows if fits(r))
    return best[1]


def gpu(r: dict[str, str], vendor: str = "NVIDIA") -> float:
    return float(r["acceleratorCount"] or 0) if r["acceleratorManufacturer"] == vendor else 0.0


class TestBurstOverEveryCurrentType:
    """A burst over `instanceTypes: "*"` picks what the catalog says is cheapest."""

    CASES = [
        (
            "4+ CPUs, 16+ GB, one NVIDIA GPU with 16+ GB",
            {"cpu": 4, "memoryGb": 16, "gpu": {"type": "nvidia", "minVram": 16}},
            lambda r: (
                float(r["vcpus"]) >= 4
                and float(r["memoryGib"]) >= 16
                and gpu(r) >= 1
                and float(r["acceleratorMemoryMib"]) / 1024 >= 16
            ),
        ),
        (
            "8+ CPUs, 32+ GB",
            {"cpu": 8, "memoryGb": 32},
            lambda r: float(r["vcpus"]) >= 8 and float(r["memoryGib"]) >= 32,
        ),
        (
            "arm64, 4+ CPUs",
            {"cpu": 4, "arch": "arm64"},
            lambda r: float(r["vcpus"]) >= 4 and r["arch"] == "arm64",
        ),
        (
            "4 NVIDIA GPUs with 40+ GB each",
            {"gpu": {"type": "nvidia", "count": 4, "minVram": 40}},
            lambda r: gpu(r) >= 4 and float(r["acceleratorMemoryMib"]) / 1024 >= 40,
        ),
        (
            "an AMD GPU",
            {"gpu": {"type": "amd"}},
            lambda r: gpu(r, "AMD") >= 1,
        ),
        (
            "a quarter of an NVIDIA GPU or more",
            {"gpu": {"type": "nvidia", "count": 0.25}},
            lambda r: gpu(r) >= 0.25,
        ),
    ]

    @pytest.mark.parametrize(("region"), ["us-east-1", "eu-central-1"])
    @pytest.mark.parametrize(("what", "requirements", "fits"), CASES, ids=[c[0] for c in CASES])
    def test_cost_optimized_matches_the_catalog(
        self, region: str, what: str, requirements: dict[str, Any], fits: Any
    ) -> None:
        try:
            expected = cheapest(region, fits)
        except ValueError:
            pytest.skip(f"no {what} in {region} in the catalog")
        engine = PlacementEngine.default(PlacementSettings(ec2_api=AwsApi.OFF))
        fleet = [Ec2Target(id="all", instance_types="*", region=region)]
        req = TaskRequirements.model_validate(requirements)
        result = run(engine.place(req, fleet, PlacementOptions(strategy="cost-optimized")))
        assert result.selected is not None, result.failure_message
        assert result.selected.id == f"all/{expected}", what

    def test_performance_picks_the_most_capable_within_max_cost(self) -> None:
        engine = PlacementEngine.default(PlacementSettings(ec2_api=AwsApi.OFF))
        fleet = [Ec2Target(id="all", instance_types="*")]
        req = TaskRequirements(gpu={"type": "nvidia"}, max_cost=10, max_runtime_minutes=60)
        result = run(engine.place(req, fleet, PlacementOptions(strategy="performance")))
        chosen = result.selected
        assert chosen is not None and chosen.estimated_cost is not None
        assert chosen.estimated_cost <= 10
        dearer = [ts for ts in result.all_scores if ts.estimated_cost and ts.estimated_cost > 10]
        assert dearer and not any(ts.eligible for ts in dearer)
        # Nothing within budget has more GPUs of the same kind or better.
        gpus = chosen.capabilities.gpu
        assert gpus is not None and gpus.count >= 1

    def test_a_region_fleet_is_hundreds_of_candidates(self) -> None:
        engine = PlacementEngine.default(PlacementSettings(ec2_api=AwsApi.OFF))
        members = run(engine.resolve([Ec2Target(id="all", instance_types="*")]))
        assert len(members) > 400


# Where the shipped catalog keeps a type's size from the price data (ec2instances.info)
# against ManageIQ's table, and why.
SIZE_DISAGREES = {
    # AWS lists i3.metal at 72 vCPUs and 512 GiB; ManageIQ's table says 64 and 488.
    "i3.metal": ((72.0, 512.0), (64.0, 488.0)),
}
EVERY_TYPE_FILE = Path(__file__).parent.parent / "data" / "aws-instance-types.csv"


class TestTheCatalogTellsTheTruth:
    """The shipped catalog against ManageIQ's table of every EC2 type
    (data/aws-instance-types.csv), read with nothing but the csv module."""

    def test_every_type_has_its_generation_size_and_architecture(self) -> None:
        every = {r["InstanceType"]: r for r in csv.DictReader(EVERY_TYPE_FILE.open())}
        lines = [line for line in CATALOG_FILE.read_text().splitlines() if line[:1] != "#"]
        rows = list(csv.DictReader(lines))
        assert len(rows) > 1500
        for row in rows:
            name = row["instanceType"]
            known = every[name]  # every shipped type is in the table
            current = "1" if known["CurrentGeneration"] == "true" else "0"
            assert row["currentGeneration"] == current, (name, row["region"])
            assert row["arch"] in known["Arch"].split("|"), name
            size = (float(row["vcpus"]), float(row["memoryGib"]))
            theirs = (float(known["vCPUs"]), float(known["MemoryGiB"]))
            assert size == theirs or SIZE_DISAGREES.get(name) == (size, theirs), name

    def test_only_old_families_are_previous_generation(self) -> None:
        catalog = Catalog.shipped()
        old = {
            r.instance.name.split(".")[0] for r in catalog if r.instance.current_generation is False
        }
        assert old and old <= {
            "a1",
            "c1",
            "c3",
            "cc2",
            "cr1",
            "d2",
            "g2",
            "hs1",
            "i2",
            "m1",
            "m2",
            "m3",
            "r3",
            "t1",
        }
        for family in ("g5", "m5", "m6i", "r6i", "c5", "r5", "r7g", "c6gn", "c4", "m4", "r4"):
            members = [r for r in catalog if r.instance.name.startswith(family + ".")]
            assert members and all(r.instance.current_generation for r in members), family

    @pytest.mark.parametrize("region", ["us-east-1", "us-west-2"])
    def test_an_a10g_task_on_every_type_gets_a_g5(self, region: str) -> None:
        """g5 is the only A10G family: a fleet of every current type must offer it."""
        engine = PlacementEngine.default(PlacementSettings(ec2_api=AwsApi.OFF))
        fleet = [Ec2Target(id="all", instance_types="*", region=region)]
        req = TaskRequirements(gpu={"type": "nvidia", "model": ["A10G"]})
        result = run(engine.place(req, fleet, PlacementOptions(strategy="cost-optimized")))
        assert result.selected is not None, result.failure_message
        assert result.selected.id == "all/g5.xlarge"
        assert result.selected.estimated_cost == pytest.approx(1.006)


class TestCommandLine:
    def test_targets_and_explain_show_price_and_source(self, cli: Cli, tmp_path: Path) -> None:
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            yaml.safe_dump(
                {
                    "targets": [
                        {"id": "g5", "type": "ec2", "instanceType": "g5.xlarge"},
                        {
                            "id": "mine",
                            "type": "ec2",
                            "instanceType": "g4dn.xlarge",
                            "hourlyRate": 0.4,
                        },
                    ]
                }
            )
        )
        code, out = cli.json("targets", "--targets", targets)
        assert code == 0
        assert out["targets"][0]["price"] == {
            "hourly": 1.006,
            "source": "catalog",
            "asOf": "2026-01-21",
            "spot": False,
            "note": "price API: no AWS credentials configured",
        }
        assert out["targets"][1]["price"]["source"] == "declared"
        code, text, _ = cli("targets", "--targets", targets)
        assert "catalog 2026-01-21" in text and "days old" in text
        task = tmp_path / "task.yaml"
        task.write_text(yaml.safe_dump({"task": {"name": "t", "requirements": {"cpu": 2}}}))
        code, text, _ = cli("explain", task, "--targets", targets)
        assert code == 0 and "$1.006/h on demand, catalog 2026-01-21" in text

    def test_catalog_facts_never_contradict_declared_tools(self, cli: Cli, tmp_path: Path) -> None:
        """The catalog cannot see tools: a declared tool is not "declared but not found"."""
        targets = tmp_path / "targets.yaml"
        declared = {"tools": ["docker", "nvidia-smi"]}
        fleet = [{"id": "g5", "type": "ec2", "instanceType": "g5.xlarge", "capabilities": declared}]
        targets.write_text(yaml.safe_dump({"targets": fleet}))
        for _ in range(2):  # probed, then from the cache file: the same
            code, out = cli.json("discover", "--targets", targets)
            (member,) = out["targets"]
            assert code == 0 and member["status"] == "catalog"
            assert member["contradictions"] == []
            assert member["sources"]["tools"] == "declared"
            assert member["sources"]["gpu"] == "catalog"
            assert member["capabilities"]["tools"] == ["docker", "nvidia-smi"]

    def test_discover_a_fleet_member_by_id(self, cli: Cli, tmp_path: Path) -> None:
        targets = tmp_path / "targets.yaml"
        targets.write_text(
            yaml.safe_dump({"targets": [{"id": "b", "type": "ec2", "instanceFamilies": ["g6"]}]})
        )
        code, out = cli.json("discover", "b/g6.xlarge", "--targets", targets)
        assert code == 0
        (member,) = out["targets"]
        assert member["id"] == "b/g6.xlarge" and member["capabilities"]["gpu"]["model"] == "L4"
        catalog = (
            "EC2 API: no AWS credentials configured: capabilities from the shipped catalog,"
            " prices of 2026-01-21"
        )
        assert member["notes"] == [catalog]
        # dated data, shown as what it is: never "fresh", never a tool "not found"
        assert (member["status"], member["cause"]) == ("catalog", catalog)
        assert member["contradictions"] == []
        code, out = cli.json("discover", "b", "--targets", targets)
        assert len(out["targets"]) > 3


def test_the_burst_example_from_the_readme(cli: Cli) -> None:
    examples = Path(__file__).parent.parent / "examples"
    fleet = load_targets(examples / "burst.yaml")
    assert [t.id for t in fleet] == ["local", "aws-burst", "aws-all-eu"]
    task = examples / "tasks" / "build-ml-model.yaml"
    code, out = cli.json(
        "place", task, "--targets", examples / "burst.yaml", "--strategy", "cost-optimized"
    )
    assert code == 0 and out["target"]["id"] == "aws-burst/g4dn.xlarge"
    assert out["candidates"][0]["price"]["source"] == "catalog"
    # aws-all-eu declares no tools, so the task's python3 and nvidia-smi rule it out
    eu = [c for c in out["candidates"] if c["id"].startswith("aws-all-eu/")]
    assert eu and not any(c["eligible"] for c in eu)


def test_discovery_caches_ec2_like_any_target(aws: str) -> None:
    api = Ec2Api(AwsApi.ON)
    discovery = Discovery({TargetKind.EC2: Ec2Prober(api, Catalog.shipped())}, CapabilityCache())
    target = Ec2Target(id="g", instance_type="g5.xlarge")
    first = run(discovery.lookup([target]))
    second = run(discovery.lookup([target], frozenset({"bazel"})))
    assert (first[0].status, second[0].status) == ("fresh", "fresh")  # tools-only, no API call
    third = run(discovery.lookup([target], frozenset({"bazel"})))
    assert third[0].status == "cached" and discovery.stats.probes == 2


class TestEveryRegion:
    """A type a region offers is a candidate there, priced or not (issue 15)."""

    def test_no_offered_type_vanishes_from_a_region(self) -> None:
        catalog = Catalog.shipped()
        priced_somewhere = {row.instance.name for row in catalog}
        for region in ("eu-central-1", "ap-south-1", "us-west-2", "sa-east-1"):
            types = catalog.types(region)
            assert "m7i.large" in types and "c6i.xlarge" in types, region
            row = catalog.row(region, "m7i.large")
            assert row is not None and row.instance.vcpus == 2 and row.instance.memory_gib == 8
            assert catalog.unpriced(region) > 100
            assert set(types) <= priced_somewhere
        assert catalog.row("eu-central-1", "no-such.type") is None

    def test_an_unpriced_type_says_so_and_how_to_get_a_price(
        self, cli: Cli, tmp_path: Path
    ) -> None:
        fleet = [{"id": "aws", "type": "ec2", "region": "eu-central-1", "instanceTypes": "*"}]
        targets = tmp_path / "targets.yaml"
        targets.write_text(yaml.safe_dump({"targets": fleet}))
        task = tmp_path / "task.yaml"
        task.write_text(yaml.safe_dump({"task": {"name": "t", "requirements": {"cpu": 2}}}))
        code, out = cli.json("explain", task, "--targets", targets)
        assert code == 0
        ids = {c["id"]: c for c in out["candidates"]}
        m7i = ids["aws/m7i.large"]
        assert m7i["eligible"] and m7i["estimatedCost"] is None
        assert "hourlyRate" in m7i["price"]["note"] and "ec2Api" in m7i["price"]["note"]
        assert "eligible without a price (hourlyRate or ec2Api gives one)" in out["why"]
        code, text, _ = cli("targets", "--targets", targets)
        assert code == 0
        assert "EC2 types have no price (not in the shipped catalog for their region)" in text
