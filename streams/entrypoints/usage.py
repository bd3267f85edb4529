"""What every command shares: the UsageError it raises and where it finds the broker."""

from __future__ import annotations

from pathlib import Path

from streams.settings import Settings


class UsageError(Exception):
    """A problem the person running the command can fix; printed without a traceback."""


def broker_file(settings: Settings) -> Path:
    return settings.data_dir / "broker.addr"


def running_broker(settings: Settings) -> str | None:
    """The configured broker, or the embedded one a running `sor-notify up` announced."""
    if settings.broker_url:
        return settings.broker_url
    path = broker_file(settings)
    if path.exists():
        return path.read_text().strip()
    return None


def require_broker(settings: Settings) -> str:
    broker_url = running_broker(settings)
    if broker_url is None:
        raise UsageError(
            "no broker to publish to: start `sor-notify up` in another terminal "
            "(it runs the embedded broker), or set SOR_BROKER_URL=host:port"
        )
    return broker_url
