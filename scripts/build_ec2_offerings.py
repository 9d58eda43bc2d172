"""Build the EC2 region offerings shipped with the package: which instance types each
region offers, from moto's recorded DescribeInstanceTypeOfferings (install the test
extras first, which bring moto).

    .venv/bin/python scripts/build_ec2_offerings.py > src/acode_placement/ec2/offerings.csv

moto (Apache-2.0, (c) the moto authors) records AWS's answers per region; the
catalog's prices cover GPU types in every region but other types in us-east-1 only,
so without this a region's non-GPU types would silently vanish from a "*" fleet.
"""

from __future__ import annotations

import gzip
import json
import sys
from datetime import UTC, datetime
from importlib import metadata, resources


def main() -> None:
    version = metadata.version("moto")
    folder = resources.files("moto").joinpath("ec2/resources/instance_type_offerings/region")
    out = sys.stdout
    out.write("# acode-placement EC2 region offerings: the instance types each region offers.\n")
    out.write(
        f"# source: moto {version} (Apache-2.0, (c) the moto authors), its recorded"
        " DescribeInstanceTypeOfferings per region\n"
    )
    built = datetime.now(UTC).date().isoformat()
    out.write(f"# built: {built} by scripts/build_ec2_offerings.py\n")
    out.write("region,instanceTypes\n")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json.gz"):
            continue
        offers = json.loads(gzip.decompress(entry.read_bytes()))
        region = entry.name.removesuffix(".json.gz")
        names = sorted({offer["InstanceType"] for offer in offers})
        out.write(f"{region},{' '.join(names)}\n")


if __name__ == "__main__":
    main()
