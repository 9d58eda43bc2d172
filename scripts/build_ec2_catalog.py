"""Build the EC2 catalog shipped with the package from the project's public data.

    .venv/bin/python scripts/build_ec2_catalog.py ../shared/data/catalogs/aws-vms.csv \
        data/aws-instance-types.csv > src/acode_placement/ec2/catalog.csv

Input: SkyPilot's v8 AWS catalog (one row per instance type and region). The GPU
details are parsed from its GpuInfo column (the EC2 API's shape); a fractional
AcceleratorCount (g6f: 0.125 of an L4) is kept as the count, never rounded up.
`currentGeneration` comes from ManageIQ's table of every EC2 type
(`data/aws-instance-types.csv`, see `data/README.md`): moto's recorded
DescribeInstanceTypes marks g5, m5, c5 and other current families as previous
generation, which AWS does not. `storageGb` still comes from moto's data (install
the test extras first); blank where moto does not know a type.
"""

from __future__ import annotations

import ast
import csv
import gzip
import json
import sys
from datetime import UTC, datetime
from importlib import metadata, resources

COLUMNS = [
    "instanceType",
    "region",
    "vcpus",
    "memoryGib",
    "arch",
    "acceleratorManufacturer",
    "acceleratorName",
    "acceleratorCount",
    "acceleratorMemoryMib",
    "storageGb",
    "currentGeneration",
    "price",
    "spotPrice",
    "priceDate",
]
GPU_PRICES = "2026-01-21"  # instances.vantage.sh, per region
OTHER_PRICES = "2023-08-30"  # ec2instances.info, us-east-1


def moto_types() -> dict[str, dict[str, object]]:
    data = resources.files("moto.ec2").joinpath("resources/instance_types.json.gz").read_bytes()
    return dict(json.loads(gzip.decompress(data)))


def generations(path: str) -> dict[str, bool]:
    """Each type's `CurrentGeneration` in ManageIQ's table."""
    with open(path, encoding="utf-8") as file:
        return {r["InstanceType"]: r["CurrentGeneration"] == "true" for r in csv.DictReader(file)}


def main(source: str, types: str) -> None:
    api = moto_types()
    current_types = generations(types)
    out = csv.writer(sys.stdout, lineterminator="\n")
    print("# acode-placement EC2 catalog: instance types, Linux on-demand and spot USD/hour.")
    print("# source: SkyPilot v8 AWS catalog (the project's shared data, aws-vms.csv):")
    print(f"#   accelerator types from instances.vantage.sh, per region, prices of {GPU_PRICES};")
    print(f"#   other types from ec2instances.info, us-east-1 only, prices of {OTHER_PRICES}.")
    print(
        "# currentGeneration: ManageIQ's aws_instance_types.yml (commit 59fcb98, 2026-04-27;"
        " Apache-2.0), data/aws-instance-types.csv."
    )
    print(f"# storageGb: EC2 DescribeInstanceTypes as recorded in moto {metadata.version('moto')}.")
    print(f"# built: {datetime.now(UTC).date()} by scripts/build_ec2_catalog.py")
    out.writerow(COLUMNS)
    with open(source, encoding="utf-8") as file:
        rows = sorted(csv.DictReader(file), key=lambda r: (r["Region"], r["InstanceType"]))
    for row in rows:
        info = ast.literal_eval(row["GpuInfo"]) if row["GpuInfo"] else None
        gpu = info["Gpus"][0] if info else None
        known = api.get(row["InstanceType"], {})
        storage = (known.get("InstanceStorageInfo") or {}).get("TotalSizeInGB", "")
        current = current_types.get(row["InstanceType"])
        out.writerow(
            [
                row["InstanceType"],
                row["Region"],
                _number(row["vCPUs"]),
                _number(row["MemoryGiB"]),
                row["Arch"],
                gpu["Manufacturer"] if gpu else "",
                row["AcceleratorName"] or (gpu["Name"] if gpu else ""),
                _number(row["AcceleratorCount"]) if row["AcceleratorCount"] else "",
                gpu["MemoryInfo"]["SizeInMiB"] if gpu else "",
                storage,
                "" if current is None else int(bool(current)),
                row["Price"],
                row["SpotPrice"],
                GPU_PRICES if row["AcceleratorName"] else OTHER_PRICES,
            ]
        )


def _number(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else str(value)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
