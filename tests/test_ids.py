"""Request and reservation ids are random version-4 UUIDs in their usual text form."""

from __future__ import annotations

import os
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


def test_a_forked_child_never_hands_out_its_parents_ids() -> None:
    new_id()  # the pool holds unused bytes now
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, " ".join(new_id() for _ in range(300)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = set(pipe.read().split())
    os.waitpid(child, 0)
    ours = {new_id() for _ in range(300)}
    assert len(theirs) == 300 and not theirs & ours
