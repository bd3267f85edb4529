"""No e-mail address, password or token reaches a log line."""

from __future__ import annotations

import logging

import pytest
import structlog

from streams.logs import configure_logging


@pytest.fixture(autouse=True)
def _restore_root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_emails_and_secrets_are_redacted(capsys) -> None:
    configure_logging("json", "info")
    structlog.get_logger().info(
        "subscriber import for jane.doe+x@example.org",
        email="jane@example.org",
        password="hunter22",
        token="tok",
        count=3,
    )
    logging.getLogger("aiokafka").warning("connect failed for bob@example.com")
    err = capsys.readouterr().err
    assert "example.org" not in err and "bob@example.com" not in err
    assert "hunter22" not in err and '"tok"' not in err
    assert "[email]" in err and '"count": 3' in err


def test_library_log_lines_with_named_arguments_are_redacted_and_still_written(capsys) -> None:
    configure_logging("json", "info")
    logging.getLogger("aiokafka").warning(
        "connect failed for %(who)s on %(n)d", {"who": "bob@example.com", "n": 2}
    )
    logging.getLogger("aiokafka").warning("connect failed for %s on %d", "amy@example.com", 3)
    err = capsys.readouterr().err
    assert "Logging error" not in err and "example.com" not in err
    assert "connect failed for [email] on 2" in err and "connect failed for [email] on 3" in err
