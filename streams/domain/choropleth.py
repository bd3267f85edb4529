"""Classing counts for a choropleth: up to five classes of non-zero counts, zero apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CLASSES = 5


@dataclass(frozen=True)
class Bin:
    """Counts from `low` to `high`, both included; `shade` 1 (lightest) to CLASSES (darkest)."""

    low: int
    high: int
    shade: int

    @property
    def label(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}–{self.high}"


def bins(counts: Sequence[int], classes: int = CLASSES) -> tuple[Bin, ...]:
    """Quantile classes of the non-zero counts (each holds about as many areas), as whole-number
    ranges that meet; fewer classes when there are fewer distinct counts. The shades spread
    over the whole scale, so two classes are light and dark, not the two lightest."""
    positive = sorted(c for c in counts if c > 0)
    if not positive:
        return ()
    highs: list[int] = []
    for k in range(1, classes + 1):
        high = positive[max(0, round(k * len(positive) / classes) - 1)]
        if not highs or high > highs[-1]:
            highs.append(high)
    lows = [1] + [h + 1 for h in highs[:-1]]
    n = len(highs)
    return tuple(
        Bin(low, high, 1 + round(i * (classes - 1) / (n - 1)) if n > 1 else classes)
        for i, (low, high) in enumerate(zip(lows, highs, strict=True))
    )


def shade_of(count: int, classed: Sequence[Bin]) -> int:
    """0 for none, else the shade of the class holding `count`."""
    if count <= 0:
        return 0
    return next((b.shade for b in classed if count <= b.high), classed[-1].shade if classed else 0)
