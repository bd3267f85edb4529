"""structlog set-up for entrypoints: JSON off a terminal, and e-mail addresses redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog

_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(\.[\w\-]+)+")
_SECRET_KEYS = {"email", "password", "token", "secret", "online_identifiers", "smtp_password"}


def _redact_text(text: str) -> str:
    return _EMAIL.sub("[email]", text)


def redact(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Last line of defence: no e-mail address, password or token reaches a log line."""
    for key, value in list(event_dict.items()):
        if key in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
        elif isinstance(value, str):
            event_dict[key] = _redact_text(value)
    return event_dict


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _redact_text(record.msg)
        if isinstance(record.args, Mapping):  # log.info("%(name)s", {"name": ...})
            record.args = {k: _redact_text(v) if isinstance(v, str) else v for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(_redact_text(a) if isinstance(a, str) else a for a in record.args)
        return True


@contextmanager
def about_message(message: Any, **ids: Any) -> Iterator[None]:
    """Every log line inside names the record it is about: topic, partition, offset, ids.

    Bound with structlog contextvars, so lines logged by code called from here (the
    repository, the geocoder) carry them too. Ids must be pseudonymous (event and offender
    ids, never an e-mail address).
    """
    with structlog.contextvars.bound_contextvars(
        topic=message.topic, partition=message.partition, offset=message.offset, **ids
    ):
        yield


def configure_logging(fmt: str = "auto", level: str = "info") -> None:
    json_out = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json_out else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    handler.addFilter(_RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Faust and aiokafka are chatty at INFO; keep their warnings. At debug level they speak
    # too (that is how broker trouble is diagnosed).
    quiet = root.level if root.level <= logging.DEBUG else max(logging.WARNING, root.level)
    for noisy in ("aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(quiet)
    # geopy logs request URLs, which hold addresses: never below WARNING.
    logging.getLogger("geopy").setLevel(max(logging.WARNING, root.level))
