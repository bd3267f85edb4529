"""Reading one setting's value from the environment, with a message naming the variable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar


class SettingsError(ValueError):
    """A configuration value a person must fix; the message names the variable."""


def opt_bool(env: Mapping[str, str], name: str) -> bool | None:
    """None when unset: the program decides."""
    return None if env.get(name) in (None, "") else boolean(env, name, False)


def boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


_Number = TypeVar("_Number", int, float)


def number(
    env: Mapping[str, str],
    name: str,
    default: _Number,
    lo: _Number,
    hi: _Number,
    parse: Callable[[str], _Number],
    expected: str,
    in_range: str,
) -> _Number:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected {expected}") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value}: expected {in_range.format(lo=lo, hi=hi)}")
    return value


def whole(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    return number(env, name, default, lo, hi, int, "a whole number", "a number from {lo} to {hi}")


def seconds(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    return number(env, name, default, lo, hi, float, "a number of seconds", "from {lo} to {hi} seconds")
