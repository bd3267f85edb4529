"""Registrants counted by county, tier and compliance status: one tally, every county listed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# The registry's values (schemas/registry-event.schema.json): tier under RSMo 589.414, and
# the compliance status of the registration.
TIERS: tuple[int, ...] = (1, 2, 3)
COMPLIANCE: tuple[str, ...] = ("compliant", "noncompliant", "absconded", "incarcerated")


@dataclass(frozen=True)
class Counts:
    total: int
    tiers: tuple[int, ...]  # in TIERS order
    compliance: tuple[int, ...]  # in COMPLIANCE order
    # tier x compliance: by_tier_compliance[i][j] for TIERS[i], COMPLIANCE[j]
    by_tier_compliance: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class CountyCounts:
    fips: str
    name: str
    counts: Counts


@dataclass(frozen=True)
class RegistrantCounts:
    counties: tuple[CountyCounts, ...]  # every county given, none left out for a zero
    elsewhere: Counts  # no county of the state: outside it, no home address, or not known
    total: Counts


class _Tally:
    def __init__(self) -> None:
        self.cells = [[0] * len(COMPLIANCE) for _ in TIERS]

    def add(self, tier: int, compliance: str) -> None:
        self.cells[TIERS.index(tier)][COMPLIANCE.index(compliance)] += 1

    def counts(self) -> Counts:
        cells = tuple(tuple(row) for row in self.cells)
        return Counts(
            sum(map(sum, cells)),
            tuple(sum(row) for row in cells),
            tuple(sum(row[j] for row in cells) for j in range(len(COMPLIANCE))),
            cells,
        )


def tally(
    registrants: Iterable[tuple[str | None, int, str]], counties: Sequence[tuple[str, str]]
) -> RegistrantCounts:
    """Count (county FIPS or None, tier, compliance) over these `counties` (FIPS, name).

    A tier or status the registry does not have is a ValueError: the events are validated
    against the schema, so one here is a bug to hear about, not a number to drop.
    """
    by_county = {fips: _Tally() for fips, _ in counties}
    elsewhere, total = _Tally(), _Tally()
    for fips, tier, compliance in registrants:
        total.add(tier, compliance)
        by_county.get(fips or "", elsewhere).add(tier, compliance)
    return RegistrantCounts(
        tuple(CountyCounts(fips, name, by_county[fips].counts()) for fips, name in counties),
        elsewhere.counts(),
        total.counts(),
    )
