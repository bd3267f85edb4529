"""DKIM settings: the selector, the domain and a key that can sign (read at start)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streams.setting_values import SettingsError, boolean


@dataclass(frozen=True)
class DkimSettings:
    """How every message is signed: d=domain, s=selector, with the key in key_file."""

    selector: str
    domain: str
    key_file: Path
    generate: bool  # the embedded default: the key is made in the data folder on first use


DKIM_MIN_BITS = 2048
_MAKE_A_DKIM_KEY = "make one with: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem"
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class DkimKeyError(ValueError):
    """A key file that cannot sign: the message says why, never what the file holds."""


def dkim_private_key(data: bytes) -> rsa.RSAPrivateKey:
    """An RSA private key of at least 2048 bits from PEM (PKCS#8 or PKCS#1), unencrypted."""
    if b"-----BEGIN" not in data:
        raise DkimKeyError(f"not a PEM private key (no -----BEGIN line); {_MAKE_A_DKIM_KEY}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise DkimKeyError("the key is encrypted: give it without a passphrase (file mode 0600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise DkimKeyError(f"not a PEM RSA or Ed25519 private key; {_MAKE_A_DKIM_KEY}") from None
    if isinstance(key, Ed25519PrivateKey):
        raise DkimKeyError(
            "an Ed25519 key: Gmail, Yahoo and Outlook verify only RSA DKIM signatures, so mail signed "
            f"with it alone fails DMARC there; give an RSA key; {_MAKE_A_DKIM_KEY}"
        )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise DkimKeyError(f"not an RSA private key; {_MAKE_A_DKIM_KEY}")
    if key.key_size < DKIM_MIN_BITS:
        raise DkimKeyError(
            f"a {key.key_size}-bit RSA key: use {DKIM_MIN_BITS} bits or more; {_MAKE_A_DKIM_KEY}"
        )
    return key


def read_dkim_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DkimKeyError(f"{path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    try:
        return dkim_private_key(data)
    except DkimKeyError as exc:
        raise DkimKeyError(f"{path}: {exc}") from None


def _dns_name(name: str) -> bool:
    return len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))


def dkim_settings(
    env: Mapping[str, str], data_dir: Path, mail_from: str, uses_smtp: bool
) -> DkimSettings | None:
    """Every message is signed; SOR_DKIM=off only on purpose. Mail that leaves through a relay
    is judged against the operator's DNS, so it needs the operator's key; the embedded default
    (Maildir) makes one of its own."""
    if not boolean(env, "SOR_DKIM", True):
        return None
    selector = env.get("SOR_DKIM_SELECTOR") or "sor-notify"
    if not _dns_name(selector):
        raise SettingsError(
            f"SOR_DKIM_SELECTOR={selector!r}: expected a DNS label (letters, digits and hyphens, "
            "at most 63, not starting or ending with a hyphen), e.g. sor2026"
        )
    from_domain = parseaddr(mail_from)[1].rpartition("@")[2].lower()
    domain = (env.get("SOR_DKIM_DOMAIN") or from_domain).lower().rstrip(".")
    if not _dns_name(domain) or "." not in domain:
        raise SettingsError(f"SOR_DKIM_DOMAIN={domain!r}: expected a domain name, e.g. example.org")
    if not (
        from_domain == domain or from_domain.endswith("." + domain) or domain.endswith("." + from_domain)
    ):
        raise SettingsError(
            f"SOR_DKIM_DOMAIN={domain!r}: the From address's domain ({from_domain}) is neither it nor "
            "under it, so DMARC would not count the signature (alignment); sign with the From domain"
        )
    raw = env.get("SOR_DKIM_PRIVATE_KEY_FILE")
    if raw:
        path = Path(raw).expanduser().resolve()
        try:
            read_dkim_key(path)
        except DkimKeyError as exc:
            raise SettingsError(f"SOR_DKIM_PRIVATE_KEY_FILE: {exc}") from None
        return DkimSettings(selector, domain, path, generate=False)
    if uses_smtp:
        raise SettingsError(
            "SOR_DKIM_PRIVATE_KEY_FILE: mail goes out through SOR_SMTP_HOST, and receivers check its "
            "DKIM signature against your DNS: give the key whose record you publish "
            f"({_MAKE_A_DKIM_KEY}; `sor-notify dkim record` prints the record), "
            "or set SOR_DKIM=off if your relay signs the mail"
        )
    return DkimSettings(selector, domain, data_dir / "dkim.key", generate=True)
