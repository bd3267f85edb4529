"""Configuration is validated once, with messages that name the variable to fix."""

from __future__ import annotations

import os
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
    assert s.digest_maps  # digests show their map pictures unless turned off
    assert not load_settings(env(tmp_path) | {"SOR_DIGEST_MAPS": "false"}).digest_maps
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
        ("SOR_DIGEST_MAPS", "pictures", "SOR_DIGEST_MAPS='pictures': expected true or false"),
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


# --- DKIM: every message signed, with a key the operator publishes -----------------------


def _pem(key) -> bytes:  # noqa: ANN001 (any cryptography private key)
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _key_file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_dkim_defaults_sign_with_the_from_domain_and_a_key_in_the_data_folder(tmp_path: Path) -> None:
    s = load_settings(env(tmp_path, SOR_MAIL_FROM="Alerts <alerts@notify.example.org>"))
    assert s.dkim is not None and s.dkim.generate
    assert (s.dkim.selector, s.dkim.domain, s.dkim.key_file) == (
        "sor-notify",
        "notify.example.org",
        tmp_path / "dkim.key",
    )


def test_dkim_off_on_purpose_signs_nothing(tmp_path: Path) -> None:
    assert load_settings(env(tmp_path, SOR_SMTP_HOST="smtp.example.org", SOR_DKIM="off")).dkim is None


def test_an_operators_key_file_is_used(tmp_path: Path, dkim_key_file: Path) -> None:
    s = load_settings(
        env(
            tmp_path,
            SOR_SMTP_HOST="smtp.example.org",
            SOR_DKIM_PRIVATE_KEY_FILE=str(dkim_key_file),
            SOR_DKIM_SELECTOR="mail.sor2026",
            SOR_DKIM_DOMAIN="example.org",
            SOR_MAIL_FROM="alerts@notify.example.org",
        )
    )
    assert s.dkim is not None and not s.dkim.generate and s.dkim.key_file == dkim_key_file


def _bad_dkim_configs(tmp_path: Path) -> list[tuple[dict[str, str], str]]:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    small = _key_file(
        tmp_path, "small.pem", _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    )
    unreadable = tmp_path / "unreadable.pem"
    return [
        # Mail through a relay is judged against the operator's DNS: a key of one's own, or off.
        ({"SOR_SMTP_HOST": "smtp.example.org"}, "mail goes out through SOR_SMTP_HOST"),
        ({"SOR_DKIM_PRIVATE_KEY_FILE": str(tmp_path / "missing.pem")}, "cannot be read (No such file"),
        ({"SOR_DKIM_PRIVATE_KEY_FILE": str(unreadable)}, "cannot be read"),
        ({"SOR_DKIM_PRIVATE_KEY_FILE": str(tmp_path)}, "cannot be read"),
        ({"SOR_DKIM_PRIVATE_KEY_FILE": _key_file(tmp_path, "text.pem", b"hello")}, "not a PEM private key"),
        (
            {
                "SOR_DKIM_PRIVATE_KEY_FILE": _key_file(
                    tmp_path, "junk.pem", b"-----BEGIN PRIVATE KEY-----\nAAAA\n"
                )
            },
            "not a PEM RSA or Ed25519 private key",
        ),
        (
            {
                "SOR_DKIM_PRIVATE_KEY_FILE": _key_file(
                    tmp_path, "ec.pem", _pem(ec.generate_private_key(ec.SECP256R1()))
                )
            },
            "not an RSA private key",
        ),
        (
            {
                "SOR_DKIM_PRIVATE_KEY_FILE": _key_file(
                    tmp_path, "ed.pem", _pem(ed25519.Ed25519PrivateKey.generate())
                )
            },
            "verify only RSA DKIM signatures",
        ),
        ({"SOR_DKIM_PRIVATE_KEY_FILE": small}, "a 1024-bit RSA key: use 2048 bits or more"),
        ({"SOR_DKIM_SELECTOR": "bad_selector"}, "SOR_DKIM_SELECTOR='bad_selector': expected a DNS label"),
        ({"SOR_DKIM_SELECTOR": "-sor"}, "expected a DNS label"),
        ({"SOR_DKIM_SELECTOR": "a" * 64}, "expected a DNS label"),
        ({"SOR_DKIM_DOMAIN": "not a domain"}, "SOR_DKIM_DOMAIN='not a domain': expected a domain name"),
        ({"SOR_DKIM_DOMAIN": "other.example"}, "DMARC would not count the signature"),
        ({"SOR_DKIM": "maybe"}, "SOR_DKIM='maybe': expected true or false"),
    ]


def test_bad_dkim_settings_are_refused_at_start_with_what_to_fix(tmp_path: Path) -> None:
    configs = _bad_dkim_configs(tmp_path)
    (tmp_path / "unreadable.pem").write_bytes(b"x")
    (tmp_path / "unreadable.pem").chmod(0)
    for extra, fragment in configs:
        if "unreadable" in extra.get("SOR_DKIM_PRIVATE_KEY_FILE", "") and os.geteuid() == 0:
            continue  # root reads any file
        with pytest.raises(SettingsError) as err:
            load_settings(env(tmp_path, SOR_MAIL_FROM="alerts@notify.example.org", **extra))
        assert fragment in str(err.value), (extra, str(err.value))
        assert "AAAA" not in str(err.value)  # never what the file holds
