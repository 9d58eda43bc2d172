"""`rank` orders the eligible exactly as one sort on the whole key would: score,
then preferences met, then the tie-breaker (id), then the order given, whatever
order the targets come in and however many tie."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from acode_placement.models import TieBreaker
from acode_placement.ranking import rank


@dataclass(frozen=True)
class Named:
    id: str


@dataclass(frozen=True)
class Scored:
    """What `rank` reads of a TargetScore (whose `id` is its target's)."""

    index: int
    target: Named
    score: float
    preference_share: float
    eligible: bool

    @property
    def id(self) -> str:
        return self.target.id

    @property
    def preference_fraction(self) -> float:
        return self.preference_share


scored = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "b2"]),
        st.sampled_from([0.25, 0.5, 0.5000000000000001, 1.0]),
        st.sampled_from([0.0, 0.5, 1.0]),
        st.booleans(),
    ),
    max_size=30,
).flatmap(
    lambda rows: st.permutations(
        [
            Scored(n, Named(name), score, share, ok)
            for n, (name, score, share, ok) in enumerate(rows)
        ]
    )
)


@given(scored, st.sampled_from(list(TieBreaker)))
def test_rank_is_one_sort_on_the_whole_key(targets: list[Scored], tie: TieBreaker) -> None:
    eligible = [t for t in targets if t.eligible]
    if tie == TieBreaker.ID:
        expected = sorted(eligible, key=lambda t: (-t.score, -t.preference_fraction, t.id, t.index))
    else:
        expected = sorted(eligible, key=lambda t: (-t.score, -t.preference_fraction, t.index))
    assert rank(targets, tie) == expected  # type: ignore[arg-type]
