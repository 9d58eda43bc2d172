"""Request and reservation ids are random version-4 UUIDs in their usual text form."""

from __future__ import annotations

import uuid

from acode_placement.ids import new_id


def test_ids_are_version_4_uuids_written_as_uuid_writes_them() -> None:
    made = [new_id() for _ in range(5000)]
    assert len(set(made)) == len(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == text
    # every random digit takes every value: nothing is stuck
    for position in (0, 9, 15, 20, 35):
        assert len({text[position] for text in made}) == 16
    assert {text[19] for text in made} == set("89ab")
