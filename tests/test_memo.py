"""What the engine keeps per list of targets (fleets resolved, declared facts) is
found again only for the very same objects, and never serves a changed fleet."""

from __future__ import annotations

import asyncio

from acode_placement import Capabilities, PlacementEngine, PlacementOptions, TaskRequirements
from acode_placement.memo import IdentityMemo
from acode_placement.models import AnyTarget, Ec2Target, SshTarget

OFF = PlacementOptions(discovery_enabled=False)


def box(id_: str, cpu: float) -> SshTarget:
    return SshTarget(id=id_, host=f"{id_}.internal", capabilities=Capabilities(cpu=cpu))


class TestIdentityMemo:
    def test_found_for_the_same_objects_only(self) -> None:
        memo: IdentityMemo[object, str] = IdentityMemo()
        a, b = object(), object()
        assert memo.get([a, b], lambda objects: f"{len(objects)} objects") == "2 objects"
        assert memo.find([a, b]) == "2 objects"
        assert memo.find([b, a]) is None  # order matters
        assert memo.find([a]) is None
        assert memo.find([a, object()]) is None

    def test_equal_is_not_the_same(self) -> None:
        memo: IdentityMemo[object, int] = IdentityMemo()
        first = [box("a", 4)]
        memo.keep(first, 1)
        assert memo.find([box("a", 4)]) is None  # equal, but another object


class TestEngine:
    def place(self, engine: PlacementEngine, targets: list[AnyTarget], cpu: float) -> str | None:
        result = asyncio.run(engine.place(TaskRequirements(cpu=cpu), targets, OFF, record=False))
        return result.selected.id if result.selected else None

    def test_a_list_changed_in_place_is_decided_afresh(self) -> None:
        engine = PlacementEngine()
        fleet: list[AnyTarget] = [box("small", 2)]
        assert self.place(engine, fleet, 4) is None
        fleet.append(box("big", 8))
        assert self.place(engine, fleet, 4) == "big"
        fleet[1] = box("big", 2)  # same id, new capabilities
        assert self.place(engine, fleet, 4) is None

    def test_repeated_calls_reuse_what_they_can(self) -> None:
        engine = PlacementEngine()
        fleet: list[AnyTarget] = [
            box("a", 8),
            Ec2Target(id="g5", instance_type="g5.xlarge"),
            Ec2Target(id="fleet", instance_types=("c7i.large", "c7i.xlarge")),
        ]
        first = asyncio.run(engine.resolve(fleet))
        again = asyncio.run(engine.resolve(fleet))
        assert first == again and first is not again  # a copy the caller may change
        assert all(x is y for x, y in zip(first, again, strict=True))
        assert [t.id for t in first] == ["a", "g5", "fleet/c7i.large", "fleet/c7i.xlarge"]
        known = asyncio.run(engine.capabilities(first, TaskRequirements(), OFF))
        known_again = asyncio.run(engine.capabilities(first, TaskRequirements(), OFF))
        assert all(x is y for x, y in zip(known, known_again, strict=True))
        first.pop()  # changing the copy changes nothing kept
        assert len(asyncio.run(engine.resolve(fleet))) == 4
