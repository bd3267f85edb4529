"""Every message is DKIM-signed: digests through a real SMTP server and the embedded Maildir,
checked with dkimpy's verifier against the record `sor-notify dkim record` prints."""

from __future__ import annotations

import mailbox
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dkim
from sqlalchemy.engine import Engine

from streams.adapters import repository
from streams.adapters.dkim_keys import record_value
from streams.bootstrap import dkim_key_for, mail_sender_for
from streams.services.digests import send_due_digests
from streams.settings import Settings, load_settings
from tests.integration.conftest import offender_state, proximity_alert

REPO = Path(__file__).resolve().parents[2]
PUBLIC = "https://notify.example.test"
FROM = "Registry Notifications <no-reply@notify.example.test>"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
REQUIRED = {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"}


def signed_tags(raw: bytes) -> dict[str, str]:
    """The DKIM-Signature's tags, unfolded; asserts there is exactly one (signed once)."""
    found = re.findall(rb"^DKIM-Signature:(.*?)\r?\n(?=\S)", raw, re.M | re.S)
    assert len(found) == 1, f"{len(found)} DKIM signatures"
    text = re.sub(r"\s+", "", found[0].decode("ascii"))
    return dict(tag.split("=", 1) for tag in text.split(";") if tag)


def verifies(raw: bytes, record: str) -> bool:
    """dkimpy's verifier, with DNS answering the record the operator published."""
    seen: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        seen.append(name)
        return record.encode("ascii")

    ok = dkim.verify(raw, dnsfunc=dns)
    assert seen in (
        [],
        [b"sor2026._domainkey.notify.example.test."],
        [b"sor2026._domainkey.notify.example.test"],
    )
    return bool(ok)


def assert_signed(raw: bytes, record: str) -> None:
    tags = signed_tags(raw)
    assert (tags["a"], tags["c"], tags["d"], tags["s"]) == (
        "rsa-sha256",
        "relaxed/relaxed",
        "notify.example.test",
        "sor2026",
    )
    assert set(tags["h"].lower().split(":")) >= REQUIRED
    assert verifies(raw, record)
    # A Subject changed on the way no longer verifies.
    tampered = re.sub(rb"^Subject: ", b"Subject: URGENT ", raw, count=1, flags=re.M)
    assert tampered != raw and not verifies(tampered, record)


def record_from_command(env: dict[str, str]) -> str:
    """What `sor-notify dkim record` prints as the value to publish (and its name)."""
    proc = subprocess.run(
        [sys.executable, "-m", "streams.entrypoints.cli", "dkim", "record"],
        env={k: v for k, v in os.environ.items() if not k.startswith("SOR_")} | env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "name:  sor2026._domainkey.notify.example.test\n" in proc.stdout
    [value] = re.findall(r"^value: (v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+)$", proc.stdout, re.M)
    return value


async def send_digest(engine: Engine, subscribe, settings: Settings) -> None:
    change = subscribe("Parent@Example.org")
    repository.save_offender_state(engine, offender_state("OFF-1", 2, first="Ray", last="Abbott"))
    repository.record_alerts(
        engine,
        [
            proximity_alert(
                change.subscriber_id, change.circles[0].circle_id, "OFF-1", "Ray Abbott", "800 Olive St"
            )
        ],
    )
    report = await send_due_digests(
        engine,
        mail_sender_for(settings),  # the composition root's sender, as `digest send` and 06:00 use
        period="2026-11-20",
        from_addr=settings.mail_from,
        public_url=PUBLIC,
        unsubscribe_url_for=lambda sid, key: f"{PUBLIC}/unsubscribe/{sid}.{key}.signature",
        now=NOW,
        lanes=4,
    )
    assert report.sent == 1


async def test_a_digest_through_smtp_is_signed_and_verifies_against_the_published_record(
    engine, subscribe, smtp_server, dkim_key_file: Path, tmp_path: Path
) -> None:
    catcher, port = smtp_server
    env = {
        "SOR_DATA_DIR": str(tmp_path),
        "SOR_MAIL_FROM": FROM,
        "SOR_SMTP_HOST": "127.0.0.1",
        "SOR_SMTP_PORT": str(port),
        "SOR_SMTP_STARTTLS": "false",
        "SOR_DKIM_SELECTOR": "sor2026",
        "SOR_DKIM_PRIVATE_KEY_FILE": str(dkim_key_file),
    }
    await send_digest(engine, subscribe, load_settings(env))
    [raw] = catcher.raw
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in raw
    # The signature covers the whole body: the HTML part's map picture too.
    assert b"Content-Type: multipart/related" in raw and b"Content-Type: image/png" in raw
    record = record_from_command(env)
    assert_signed(raw, record)
    # One character of the picture changed on the way no longer verifies.
    picture = re.search(rb"Content-Type: image/png.*?\r?\n\r?\n", raw, re.S)
    assert picture is not None
    at = picture.end() + 10
    changed = raw[:at] + (b"B" if raw[at : at + 1] == b"A" else b"A") + raw[at + 1 :]
    assert not verifies(changed, record)


async def test_the_embedded_default_signs_its_maildir_with_a_key_made_once(
    engine, subscribe, tmp_path: Path
) -> None:
    env = {"SOR_DATA_DIR": str(tmp_path), "SOR_MAIL_FROM": FROM, "SOR_DKIM_SELECTOR": "sor2026"}
    settings = load_settings(env)
    key_file = tmp_path / "dkim.key"
    assert not key_file.exists()  # made when a sender (or the record) first needs it
    await send_digest(engine, subscribe, settings)
    assert key_file.stat().st_mode & 0o777 == 0o600
    made = key_file.read_bytes()

    [key] = mailbox.Maildir(settings.maildir, create=False).keys()
    raw = mailbox.Maildir(settings.maildir, create=False).get_bytes(key)
    # The command, in another process, reuses the key: its record verifies the mail already sent.
    record = record_from_command(env)
    assert record == record_value(dkim_key_for(settings.dkim))  # type: ignore[arg-type]
    assert_signed(raw, record)
    assert key_file.read_bytes() == made
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_a_damaged_generated_key_stops_the_command_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "dkim.key").write_text("not a key")
    proc = subprocess.run(
        [sys.executable, "-m", "streams.entrypoints.cli", "dkim", "record"],
        env={k: v for k, v in os.environ.items() if not k.startswith("SOR_")}
        | {"SOR_DATA_DIR": str(tmp_path)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "configuration error: the generated DKIM key" in proc.stderr
    assert "not a PEM private key" in proc.stderr and "remove it to make a new one" in proc.stderr
    assert "Traceback" not in proc.stderr
