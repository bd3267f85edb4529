"""Configuration is validated once, with messages that name the variable to fix."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml

from streams.settings import SettingsError, load_settings


def env(tmp_path: Path, **kw: str) -> dict[str, str]:
    return {"SOR_DATA_DIR": str(tmp_path)} | kw


def test_embedded_defaults(tmp_path: Path) -> None:
    s = load_settings(env(tmp_path))
    assert s.embedded_broker and not s.uses_smtp
    assert s.database_url == f"sqlite:///{tmp_path / 'sor-notify.db'}"
    assert s.maildir == tmp_path / "maildir"
    assert s.digest_time == (6, 0) and s.timezone == "America/Chicago"
    assert s.settings_notice_delay_s == 300  # one settings e-mail per five minutes at most
    # The generated secret is kept, so unsubscribe links stay valid across restarts.
    assert load_settings(env(tmp_path)).secret_key == s.secret_key
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SOR_BROKER_URL", "http://kafka", "SOR_BROKER_URL"),
        ("SOR_DATABASE_URL", "mysql://x", "SOR_DATABASE_URL"),
        ("SOR_PARTITIONS", "zero", "whole number"),
        ("SOR_PARTITIONS", "0", "from 1 to 256"),
        ("SOR_DIGEST_TIME", "25:00", "HH:MM"),
        ("SOR_TIMEZONE", "Mars/Olympus", "time zone"),
        ("SOR_SMTP_STARTTLS", "maybe", "true or false"),
        ("SOR_PUBLIC_URL", "notify.example", "http"),
        ("SOR_SECRET_KEY", "short", "32 characters"),
        ("SOR_LOG_FORMAT", "xml", "SOR_LOG_FORMAT"),
        ("SOR_SETTINGS_NOTICE_DELAY", "5m", "whole number of minutes"),
        ("SOR_SETTINGS_NOTICE_DELAY", "0", "from 1 to 1440 minutes"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    tmp_path: Path, name: str, value: str, fragment: str
) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env(tmp_path, **{name: value}))
    assert name in str(err.value) and fragment in str(err.value)


def test_broker_url_accepts_lists_and_kafka_scheme(tmp_path: Path) -> None:
    s = load_settings(env(tmp_path, SOR_BROKER_URL="kafka://a:9092,b:9093"))
    assert s.broker_url == "a:9092,b:9093" and not s.embedded_broker


def test_the_deployment_examples_placeholder_key_and_keys_that_are_not_random_are_refused(
    tmp_path: Path,
) -> None:
    manifest = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "sor-notify.yaml"
    secret = next(d for d in yaml.safe_load_all(manifest.read_text()) if d and d.get("kind") == "Secret")
    example = secret["stringData"]["SOR_SECRET_KEY"]
    assert len(example) >= 32  # long enough: the length check alone let it through
    for key in (example, "a" * 40, "0123456789" * 4):
        with pytest.raises(SettingsError) as err:
            load_settings(env(tmp_path, SOR_SECRET_KEY=key))
        assert "SOR_SECRET_KEY" in str(err.value) and "secrets.token_urlsafe" in str(err.value)
    own = secrets.token_urlsafe(48)
    assert load_settings(env(tmp_path, SOR_SECRET_KEY=own)).secret_key == own


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path)).web_trusted_proxies == ()  # by default none: the peer is the client
    s = load_settings(env(tmp_path, SOR_WEB_TRUSTED_PROXIES=" 10.0.0.5, 192.168.10.0/24,fd00::/8 "))
    assert [str(n) for n in s.web_trusted_proxies] == ["10.0.0.5/32", "192.168.10.0/24", "fd00::/8"]


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.300", "10.0.0.1/8", "10.0.0.0/33"])
def test_a_trusted_proxy_that_is_not_an_address_is_refused_clearly(tmp_path: Path, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env(tmp_path, SOR_WEB_TRUSTED_PROXIES=f"10.0.0.5,{value}"))
    assert "SOR_WEB_TRUSTED_PROXIES" in str(err.value) and repr(value) in str(err.value)
    assert "CIDR" in str(err.value)
