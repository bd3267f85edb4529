"""Corrections to faust-streaming's consumer and producer that at-least-once delivery depends on."""

from __future__ import annotations

from typing import Iterable


def apply(*, fetch_max_wait_ms: int | None = None, contiguous_topics: Iterable[str] = ()) -> None:
    """Install the patches (once) and set what they read; a later call only changes the settings."""
    # Imported here, not at the top: the modules read faust's and aiokafka's private names.
    from streams.adapters.faust_fixes import acks, fetch, offsets, producer
    from streams.adapters.faust_fixes.settings import SETTINGS

    SETTINGS.fetch_max_wait_ms = fetch_max_wait_ms
    SETTINGS.contiguous_topics = frozenset(contiguous_topics)
    for module in (fetch, offsets, acks, producer):
        for owner, name, replacement in module.PATCHES:
            # Each replacement wraps the upstream method taken when its module was first
            # imported, so installing it again never wraps a wrapper.
            if owner.__dict__.get(name) is not replacement:
                setattr(owner, name, replacement)
