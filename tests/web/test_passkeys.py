"""Passkeys over HTTP with really signed answers: a software authenticator (P-256, attestation
"none") does what a browser's would. Sign-in without a password, as the second step, and what
is refused: another origin, a challenge answered twice, a counter that does not move on, no
user verification where the password was not given."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.web.conftest import Site, enroll_and_log_in, sent_mail
from tests.web.test_account import is_logged_in, log_in

ORIGIN = "http://notify.test"
RP_ID = "notify.test"
UP, UV, AT = 0x01, 0x04, 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator:
    """One passkey held by a software authenticator."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.count = 0
        self.user_handle = b""

    def _cose(self) -> bytes:
        n = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: n.x.to_bytes(32, "big"), -3: n.y.to_bytes(32, "big")})

    def create(self, options: dict, origin: str = ORIGIN) -> str:
        self.user_handle = unb64(options["user"]["id"])
        client = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": origin}
        ).encode()
        auth = (
            hashlib.sha256(options["rp"]["id"].encode()).digest()
            + bytes([UP | UV | AT])
            + self.count.to_bytes(4, "big")
            + bytes(16)
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth})
        return json.dumps(
            {
                "id": b64(self.credential_id),
                "rawId": b64(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64(client),
                    "attestationObject": b64(attestation),
                    "transports": ["internal"],
                },
                "clientExtensionResults": {},
            }
        )

    def get(self, options: dict, *, origin: str = ORIGIN, flags: int = UP | UV, count_up: bool = True) -> str:
        if count_up:
            self.count += 1
        client = json.dumps(
            {"type": "webauthn.get", "challenge": options["challenge"], "origin": origin}
        ).encode()
        auth = hashlib.sha256(RP_ID.encode()).digest() + bytes([flags]) + self.count.to_bytes(4, "big")
        signature = self.key.sign(auth + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": b64(self.credential_id),
                "rawId": b64(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64(client),
                    "authenticatorData": b64(auth),
                    "signature": b64(signature),
                    "userHandle": b64(self.user_handle),
                },
                "clientExtensionResults": {},
            }
        )


async def options(site: Site, path: str) -> dict:
    resp = await site.client.post(path, data={"csrf_token": site.csrf})
    assert resp.status == 200 and resp.content_type == "application/json"
    return await resp.json()


async def add_passkey(site: Site, authenticator: Authenticator) -> str:
    await site.get("/account/security")
    opts = await options(site, "/account/passkeys/options")
    assert opts["rp"]["id"] == RP_ID
    assert opts["authenticatorSelection"]["residentKey"] == "required"
    assert opts["authenticatorSelection"]["userVerification"] == "required"
    status, page = await site.post(
        "/account/passkeys",
        {"credential": authenticator.create(opts), "label": "Phone", "transports": "internal"},
    )
    return page if status == 200 else f"status {status}"


async def passkey_sign_in(site: Site, answer) -> str | None:
    """Ask for a challenge, answer it with `answer(options)`; the page the browser is sent to."""
    await site.get("/login")
    opts = await options(site, "/login/passkey/options")
    resp = await site.client.post(
        "/login/passkey", data={"credential": answer(opts), "csrf_token": site.csrf}, allow_redirects=False
    )
    return resp.headers.get("Location")


async def test_a_passkey_signs_in_without_the_password_once_per_counter_step(site: Site) -> None:
    await enroll_and_log_in(site, "pia@example.org")
    phone = Authenticator()
    page = await add_passkey(site, phone)
    assert "Your recovery codes" in page and len(re.findall(r"<li><code>", page)) == 10
    assert "factor was added" in (await sent_mail(site))[-1]["Subject"]
    await site.post("/logout")

    opts = {}

    def remember(o: dict) -> str:
        opts.update(o)
        return phone.get(o)

    assert await passkey_sign_in(site, remember) == "/notifications"
    assert opts["allowCredentials"] == [] and opts["userVerification"] == "required"  # discoverable
    assert await is_logged_in(site)
    await site.post("/logout")
    # A cloned authenticator, or a recorded answer signed again: the counter did not move on.
    assert await passkey_sign_in(site, lambda o: phone.get(o, count_up=False)) == "/login"
    assert not await is_logged_in(site)
    assert await passkey_sign_in(site, phone.get) == "/notifications"


async def test_another_origin_no_user_verification_and_a_replayed_answer_are_refused(site: Site) -> None:
    await enroll_and_log_in(site, "quin@example.org")
    phone = Authenticator()
    await add_passkey(site, phone)
    await site.post("/logout")
    assert (
        await passkey_sign_in(site, lambda o: phone.get(o, origin="http://notify.test.evil.example"))
        == "/login"
    )
    # Without a password, the passkey must have verified its user (PIN, fingerprint).
    assert await passkey_sign_in(site, lambda o: phone.get(o, flags=UP)) == "/login"
    assert not await is_logged_in(site)

    # One challenge, one answer: after a wrong answer the right one for it comes too late.
    await site.get("/login")
    opts = await options(site, "/login/passkey/options")
    wrong = phone.get(opts, origin="http://elsewhere.example")
    for credential, to in ((wrong, "/login"), (phone.get(opts), "/login")):
        resp = await site.client.post(
            "/login/passkey", data={"credential": credential, "csrf_token": site.csrf}, allow_redirects=False
        )
        assert resp.headers["Location"] == to
    assert not await is_logged_in(site)
    # An answer recorded once (signed for its challenge) does not answer the next challenge.
    recorded = phone.get(await options(site, "/login/passkey/options"))
    await options(site, "/login/passkey/options")
    resp = await site.client.post(
        "/login/passkey", data={"credential": recorded, "csrf_token": site.csrf}, allow_redirects=False
    )
    assert resp.headers["Location"] == "/login" and not await is_logged_in(site)
    assert await passkey_sign_in(site, phone.get) == "/notifications"


async def test_after_the_password_the_passkey_is_the_second_step(site: Site) -> None:
    await enroll_and_log_in(site, "rex@example.org")
    phone, stranger = Authenticator(), Authenticator()
    await add_passkey(site, phone)
    await site.post("/logout")
    await enroll_and_log_in(site, "sue@example.org")  # another account, with its own passkey
    await add_passkey(site, stranger)
    await site.post("/logout")

    status, _, location = await log_in(site, "rex@example.org")
    assert (status, location) == (303, "/login/second-step")
    status, page = await site.get("/login/second-step")
    assert "Use my passkey" in page
    opts = await options(site, "/login/passkey/options")
    assert [c["id"] for c in opts["allowCredentials"]] == [b64(phone.credential_id)]
    # Another account's passkey does not finish this account's sign-in.
    resp = await site.client.post(
        "/login/passkey",
        data={"credential": stranger.get(opts), "csrf_token": site.csrf},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "/login/second-step" and not await is_logged_in(site)
    opts = await options(site, "/login/passkey/options")
    resp = await site.client.post(
        "/login/passkey",
        data={"credential": phone.get(opts, flags=UP), "csrf_token": site.csrf},  # presence is enough here
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "/notifications" and await is_logged_in(site)
