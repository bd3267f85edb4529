"""Choropleth classes: every count in exactly one class, at most five, zero apart."""

from __future__ import annotations

import random

import pytest

from streams.domain.choropleth import CLASSES, bins, shade_of


@pytest.mark.parametrize("seed", range(20))
def test_classes_cover_every_count_once_and_darken_with_the_count(seed: int) -> None:
    rng = random.Random(seed)
    counts = [0] * rng.randint(0, 30) + [int(rng.paretovariate(1.2)) for _ in range(rng.randint(1, 115))]
    classed = bins(counts)
    assert 1 <= len(classed) <= CLASSES
    assert classed[0].low == 1 and classed[-1].high == max(counts)
    for a, b in zip(classed, classed[1:], strict=False):
        assert b.low == a.high + 1 and a.shade < b.shade
    for c in counts:
        holding = [b for b in classed if b.low <= c <= b.high]
        assert len(holding) == (0 if c == 0 else 1)
        assert shade_of(c, classed) == (holding[0].shade if holding else 0)


def test_quantile_classes_hold_about_as_many_counties_each() -> None:
    counts = list(range(1, 101))
    classed = bins(counts)
    assert [(b.low, b.high) for b in classed] == [(1, 20), (21, 40), (41, 60), (61, 80), (81, 100)]
    assert [b.shade for b in classed] == [1, 2, 3, 4, 5]
    assert [b.label for b in classed][:2] == ["1–20", "21–40"]


def test_few_distinct_counts_make_few_classes_spread_over_the_scale() -> None:
    classed = bins([0, 0, 3, 3, 7])
    assert [(b.low, b.high, b.shade) for b in classed] == [(1, 3, 1), (4, 7, 5)]
    assert classed[0].label == "1–3"
    assert [(b.label, b.shade) for b in bins([2, 2])] == [("1–2", 5)]
    assert bins([0, 0]) == () and shade_of(0, ()) == 0
