"""Our settings come from Settings alone: what faust and mode read from the environment on
their own is taken out of it before they are imported."""

from __future__ import annotations

from collections.abc import MutableMapping

# Read by faust (faust/__init__.py, faust/types/_env.py) and mode when they are imported,
# under the prefixes FAUST_ and F_. faust's per-setting variables (WEB_PORT, BROKER_URL,
# APP_DATADIR, …) never reach it: the app is built with an empty environment (streams/app.py).
_IMPORT_TIME = (
    "DATADIR",
    "LOOP",
    "DEBUG",
    "WORKDIR",
    "BLOCKING_TIMEOUT",
    "FORCE_BLOCKING_TIMEOUT",
    "CONSOLE_PORT",
    "STRICT",
    "WEB_PORT",
    "WEB_BIND",
    "F_WEB_BIND",
    "WEB_TRANSPORT",
)
LIBRARY_VARIABLES: tuple[str, ...] = tuple(
    f"{prefix}{name}" for prefix in ("FAUST_", "F_") for name in _IMPORT_TIME
) + ("DEVLOG",)


def drop_library_variables(environ: MutableMapping[str, str]) -> list[str]:
    """Remove them (for this process and the parts it starts); returns the names removed."""
    return [name for name in LIBRARY_VARIABLES if environ.pop(name, None) is not None]
