"""GPUs as the devices a task can get (issue 15): MIG instances with their own
memory, mixed cards, unified memory; from recorded `nvidia-smi` outputs of real
machines (`tests/fixtures/gpu/recorded-public/`), through every decision path."""

from __future__ import annotations

from typing import Any

import pytest

from acode_placement.discovery.gpus import parse_mig
from acode_placement.discovery.parse import parse_probe
from acode_placement.engine import PlacementEngine
from acode_placement.explain import cause_counts, hardware_text, result_json
from acode_placement.models import (
    Capabilities,
    Known,
    PlacementOptions,
    SshTarget,
    TaskRequirements,
)
from tests.conftest import FIXTURES

RECORDED = FIXTURES / "gpu" / "recorded-public"
OPTIONS = PlacementOptions(discovery_enabled=False)


def probe_text(query: str, listing: str, *, cc: str = "", memory_kb: int = 527951360) -> str:
    """A probe's output around recorded nvidia-smi answers."""
    lines = [
        "acode-probe 1",
        "os Linux",
        "arch x86_64",
        "cpu 64",
        f"mem_kb {memory_kb}",
        "route 1",
        "disk_kb 1000000000",
        "nvidia-smi-begin",
        query,
        "nvidia-smi-end 0",
        "nvidia-list-begin",
        listing.rstrip("\n"),
        "nvidia-list-end 0",
    ]
    if cc:
        lines += ["nvidia-cc-begin", cc, "nvidia-cc-end 0"]
    return "\n".join([*lines, "end"])


def caps_of(text: str) -> Capabilities:
    return parse_probe(text, tools_only=False).capabilities


SPLIT_A100 = caps_of(  # 2x 3g.40gb, nothing whole
    probe_text(
        "0, NVIDIA A100 80GB PCIe, 81920, 530.30.02",
        (RECORDED / "container-toolkit-203-L.txt").read_text(),
        cc="index, compute_cap\n0, 8.0",
    )
)
HALF_SPLIT = caps_of(  # GPU 0 as 4x 1g.20gb, GPUs 1-3 whole
    probe_text(
        "\n".join(f"{i}, NVIDIA A100-SXM4-80GB, 81920, 535.104.05" for i in range(4)),
        (RECORDED / "telegraf-5812-L.txt").read_text(),
    )
)
SEVEN = caps_of(
    probe_text(
        "0, NVIDIA A100-SXM4-80GB, 81920, 535.216.01",
        (RECORDED / "datadog-33120-L.txt").read_text(),
    )
)


def test_mig_listings_are_read_per_gpu() -> None:
    assert parse_mig((RECORDED / "telegraf-5812-L.txt").read_text()) == {0: ["1g.20gb"] * 4}
    assert parse_mig((RECORDED / "container-toolkit-203-L.txt").read_text()) == {
        0: ["3g.40gb", "3g.40gb"]
    }
    assert parse_mig("GPU 0: NVIDIA H100 (UUID: GPU-1)\n") == {}


def test_a_split_gpu_is_offered_as_its_instances_never_whole() -> None:
    gpu = SPLIT_A100.gpu
    assert gpu is not None
    assert (gpu.model, gpu.vram_gb, gpu.count, gpu.mig) == (
        "NVIDIA A100 80GB PCIe MIG 3g.40gb",
        40.0,
        2,
        "3g.40gb",
    )
    assert gpu.compute_capability == 8.0 and gpu.driver == "530.30.02"
    assert SPLIT_A100.gpus == ()  # one kind
    kinds = [(k.model, k.vram_gb, k.count) for k in HALF_SPLIT.gpus]
    assert kinds == [
        ("NVIDIA A100-SXM4-80GB", 80.0, 3),
        ("NVIDIA A100-SXM4-80GB MIG 1g.20gb", 20.0, 4),
    ]
    assert HALF_SPLIT.gpu == HALF_SPLIT.gpus[0]


def place(caps: Capabilities, gpu: dict[str, Any], compile_from: int) -> Any:
    targets = [
        SshTarget(id=f"box{i}", host="h", capabilities=c)
        for i, c in enumerate([caps] * (1 if compile_from else 60))
    ]
    known = [Known(t.capabilities or Capabilities()) for t in targets]
    req = TaskRequirements.model_validate({"gpu": {"type": "nvidia", **gpu}})
    engine = PlacementEngine(compile_from=compile_from)
    fast = engine.decide(req, targets, known, OPTIONS, request_id="r")
    slow = engine.decide(req, targets, known, OPTIONS, request_id="r", reference=True)
    documents = [result_json(fast), result_json(slow)]
    for document in documents:
        document.pop("decisionMs")
    assert documents[0] == documents[1]  # the loop or the columns, as the checks say
    assert list(cause_counts(fast.all_scores).items()) == list(
        cause_counts(slow.all_scores).items()
    )
    return slow


@pytest.mark.parametrize("compile_from", [0, 10**6])
@pytest.mark.parametrize(
    ("caps", "gpu", "fits"),
    [
        pytest.param(SPLIT_A100, {"minVram": 41}, False, id="41GB-on-2x3g.40gb"),
        pytest.param(SPLIT_A100, {"minVram": 20}, True, id="20GB-on-2x3g.40gb"),
        pytest.param(SPLIT_A100, {"minVram": 20, "count": 2}, True, id="2x20GB-on-2x3g.40gb"),
        pytest.param(SPLIT_A100, {"minVram": 20, "count": 3}, False, id="3x20GB-on-2x3g.40gb"),
        pytest.param(HALF_SPLIT, {"minVram": 41, "count": 3}, True, id="3x41GB-on-3-whole"),
        pytest.param(HALF_SPLIT, {"minVram": 41, "count": 4}, False, id="4x41GB-on-3-whole"),
        pytest.param(HALF_SPLIT, {"minVram": 20, "count": 7}, True, id="7x20GB-on-3+4"),
        pytest.param(HALF_SPLIT, {"minVram": 20, "count": 8}, False, id="8x20GB-on-3+4"),
        pytest.param(HALF_SPLIT, {"model": ["1g.20gb"], "count": 4}, True, id="by-profile"),
        pytest.param(SEVEN, {"minVram": 10, "count": 7}, True, id="7x1g.10gb"),
        pytest.param(SEVEN, {"minVram": 11}, False, id="11GB-on-1g.10gb"),
    ],
)
def test_a_task_gets_devices_each_with_what_it_asks(
    caps: Capabilities, gpu: dict[str, Any], fits: bool, compile_from: int
) -> None:
    result = place(caps, gpu, compile_from)
    assert result.success is fits
    if not fits:
        box = result.all_scores[0]
        assert box.mismatches  # and the words say what the devices lack
    else:
        assert "MIG" in hardware_text(result.selected) or gpu.get("count", 1) <= 3


def test_the_explanation_names_the_devices() -> None:
    result = place(SPLIT_A100, {"minVram": 41}, 10**6)
    from acode_placement.explain import check_text

    texts = [check_text(c) for c in result.all_scores[0].mismatches]
    assert texts == ["gpu vram 40 < 41"]
    assert hardware_text(result.all_scores[0]).endswith(
        "2x NVIDIA A100 80GB PCIe MIG 3g.40gb 40 GB"
    )
    assert "3x NVIDIA A100-SXM4-80GB 80 GB + 4x NVIDIA A100-SXM4-80GB MIG 1g.20gb 20 GB" in (
        hardware_text(place(HALF_SPLIT, {"count": 1}, 10**6).all_scores[0])
    )


def test_a_unified_memory_gpu_offers_the_systems_memory() -> None:
    """A DGX Spark's GB10 reports memory.total as [N/A]: it addresses the system's."""
    recorded = (RECORDED / "unsloth-10703-query.csv").read_text().splitlines()[1]
    banner = (RECORDED / "arctic-345-banner.txt").read_text().split("CUDA Version:")[1].split()[0]
    text = probe_text(recorded, "GPU 0: NVIDIA GB10 (UUID: GPU-1)", memory_kb=125_500_000)
    text = text.removesuffix("\nend") + f"\ncuda_version {banner}\nend"
    caps = caps_of(text)
    gpu = caps.gpu
    assert gpu is not None
    assert (gpu.model, gpu.unified, gpu.vram_gb, gpu.cuda) == ("NVIDIA GB10", True, 119.7, "13.0")
    assert place(caps, {"minVram": 64}, 10**6).success
    assert not place(caps, {"minVram": 128}, 10**6).success


def test_reservations_take_devices_off_the_largest_kind_first() -> None:
    from acode_placement import capacity
    from acode_placement.models import Usage

    target = SshTarget(id="box", host="h", capabilities=HALF_SPLIT)
    total = capacity.capacity_of(target, HALF_SPLIT)
    assert total.gpus == 7
    free = capacity.free(HALF_SPLIT, total, Usage(gpus=4, tasks=2))
    assert [(k.vram_gb, k.count) for k in free.gpus] == [(80.0, 0), (20.0, 3)]
