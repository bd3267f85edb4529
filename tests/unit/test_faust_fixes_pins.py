"""The faust fixes run only on the faust, aiokafka and mode versions they were written for."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from faust.transport.consumer import Consumer

from streams.adapters import faust_fixes
from streams.adapters.faust_fixes import PINNED_VERSIONS, acks, version_mismatch

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _pins_in_pyproject() -> dict[str, str]:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = {}
    for requirement in dependencies:
        name, sep, version = requirement.partition("==")
        if sep:
            pins[name.strip()] = version.strip()
    return pins


def test_the_versions_the_fixes_check_are_the_ones_pyproject_pins() -> None:
    pins = _pins_in_pyproject()
    assert {name: pins.get(name) for name in PINNED_VERSIONS} == dict(PINNED_VERSIONS)


def test_the_pinned_versions_are_accepted() -> None:
    assert version_mismatch(dict(PINNED_VERSIONS)) is None


def test_a_newer_faust_is_refused_naming_the_pins_and_what_is_installed() -> None:
    message = version_mismatch({**PINNED_VERSIONS, "faust-streaming": "0.16.0"})
    assert message == (
        "sor-notify's faust fixes are written for faust-streaming==0.15.3, aiokafka==0.14.0 "
        "and mode-streaming==0.7.1; installed faust-streaming 0.16.0: install the pinned "
        "versions (pip install -e .)"
    )


def test_an_older_aiokafka_is_refused_too() -> None:
    message = version_mismatch({**PINNED_VERSIONS, "aiokafka": "0.13.0"})
    assert message is not None
    assert "aiokafka==0.14.0" in message and "installed aiokafka 0.13.0" in message


def test_a_missing_distribution_is_refused() -> None:
    installed = {name: v for name, v in PINNED_VERSIONS.items() if name != "mode-streaming"}
    message = version_mismatch(installed)
    assert message is not None
    assert "mode-streaming==0.7.1" in message and "mode-streaming (not installed)" in message


def test_apply_succeeds_on_the_installed_versions_and_twice_is_once() -> None:
    faust_fixes.apply(contiguous_topics=["registry-events"])
    patched = Consumer.ack
    faust_fixes.apply(contiguous_topics=["registry-events"])
    assert Consumer.ack is patched is acks.ack
    assert acks._upstream_ack.__module__ == "faust.transport.consumer"  # faust's own, not a wrapper


def test_apply_refuses_by_raising_with_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    newer_aiokafka = {**PINNED_VERSIONS, "aiokafka": "0.15.0"}
    monkeypatch.setattr(faust_fixes, "installed_versions", lambda: newer_aiokafka)
    with pytest.raises(faust_fixes.UnpinnedVersions, match=r"aiokafka==0\.14\.0"):
        faust_fixes.apply()
