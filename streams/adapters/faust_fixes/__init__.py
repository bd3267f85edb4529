"""Corrections to faust-streaming's consumer and producer that at-least-once delivery depends on."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import metadata
from types import MappingProxyType

# The distributions whose private methods the patches replace, at the versions they were read
# against: any other version may have moved what a patch relies on without an error.
# pyproject.toml pins the same (tests/unit/test_faust_fixes_pins.py holds them together).
PINNED_VERSIONS: Mapping[str, str] = MappingProxyType(
    {
        "faust-streaming": "0.15.3",
        "aiokafka": "0.14.0",
        "mode-streaming": "0.7.1",  # Service.state and notify, read by the producer and ack patches
    }
)


class UnpinnedVersions(RuntimeError):
    """Faust, aiokafka or mode is installed at a version the patches were not written for."""


def version_mismatch(
    installed: Mapping[str, str | None], pinned: Mapping[str, str] = PINNED_VERSIONS
) -> str | None:
    """Why the patches must not run with `installed` (distribution -> version, None if
    absent), or None when every pinned distribution is at its pinned version."""
    wrong = [
        f"{name} {installed.get(name) or '(not installed)'}"
        for name, version in pinned.items()
        if installed.get(name) != version
    ]
    if not wrong:
        return None
    pins = [f"{name}=={version}" for name, version in pinned.items()]
    required = ", ".join(pins[:-1]) + " and " + pins[-1] if len(pins) > 1 else pins[0]
    return (
        f"sor-notify's faust fixes are written for {required}; installed {', '.join(wrong)}: "
        "install the pinned versions (pip install -e .)"
    )


def installed_versions(names: Iterable[str] = PINNED_VERSIONS) -> dict[str, str | None]:
    """The installed version of each distribution in `names`, None where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def apply(*, fetch_max_wait_ms: int | None = None, contiguous_topics: Iterable[str] = ()) -> None:
    """Install the patches (once) and set what they read; a later call only changes the settings.

    Refuses (UnpinnedVersions) unless faust, aiokafka and mode are the pinned versions.
    """
    problem = version_mismatch(installed_versions())
    if problem is not None:
        raise UnpinnedVersions(problem)
    # Imported only now: the modules read private names another version may not have, and
    # the refusal above should be what a wrong version shows, not an ImportError.
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
