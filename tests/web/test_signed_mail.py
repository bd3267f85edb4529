"""Account mail is DKIM-signed like the digests: the confirmation link's mail, checked with
dkimpy's verifier against the record the product publishes."""

from __future__ import annotations

from pathlib import Path

from streams.adapters.dkim_keys import record_value
from streams.bootstrap import dkim_key_for, mail_sender_for
from streams.settings import load_settings
from tests.integration.test_dkim import assert_signed
from tests.web.conftest import open_site, sent_mail


async def test_the_confirmation_mail_is_signed_and_a_changed_subject_fails(
    engine, smtp_server, tmp_path: Path, dkim_key_file: Path
) -> None:
    catcher, port = smtp_server
    settings = load_settings(
        {
            "SOR_DATA_DIR": str(tmp_path),
            "SOR_MAIL_FROM": "Registry Notifications <no-reply@notify.example.test>",
            "SOR_SMTP_HOST": "127.0.0.1",
            "SOR_SMTP_PORT": str(port),
            "SOR_SMTP_STARTTLS": "false",
            "SOR_DKIM_SELECTOR": "sor2026",
            "SOR_DKIM_PRIVATE_KEY_FILE": str(dkim_key_file),
        }
    )
    async with open_site(engine, port, catcher, tmp_path, mail=mail_sender_for(settings)) as site:
        email = "new.person@example.com"
        password = "plum orchard lantern"
        await site.get("/enroll")
        status, _ = await site.post(
            "/enroll", {"email": email, "email2": email, "password": password, "password2": password}
        )
        assert status == 200
        [msg] = await sent_mail(site)
        assert "/confirm/" in msg.get_body(preferencelist=("plain",)).get_content()
    [raw] = catcher.raw
    assert_signed(raw, record_value(dkim_key_for(settings.dkim)))  # type: ignore[arg-type]
