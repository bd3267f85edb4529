"""What `apply()` was told: the settings the patches read at run time."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FixSettings:
    # Mutable and shared rather than frozen: the patches are installed once, on classes, and
    # read this at every call, so a later apply() (each test's app, each worker) changes it.
    fetch_max_wait_ms: int | None = None
    # Topics whose offsets have no holes (delete policy, no transactions): a jump is a lost record.
    contiguous_topics: frozenset[str] = field(default_factory=frozenset)


SETTINGS = FixSettings()
