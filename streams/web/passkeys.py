"""Passkeys (WebAuthn): the relying party from SOR_PUBLIC_URL, the options a browser gets, the checks of its answers."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlsplit

import webauthn
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.registration.verify_registration_response import VerifiedRegistration

from streams.adapters.passkeys_db import Passkey
from streams.settings import Settings

RP_NAME = "Registry e-mail alerts"
TIMEOUT_MS = 120_000
_TRANSPORTS = {t.value for t in AuthenticatorTransport}


def rp_id(settings: Settings) -> str:
    return urlsplit(settings.public_url).hostname or "localhost"


def origin(settings: Settings) -> str:
    """The only origin a response may come from: the site's public address."""
    parts = urlsplit(settings.public_url)
    return f"{parts.scheme}://{parts.netloc}"


def user_handle(settings: Settings, subscriber_id: int) -> bytes:
    """What the authenticator stores as the user: neither the address nor the id, and the same
    for every passkey of one subscriber (so a browser offers them together)."""
    return hmac.new(
        settings.secret_key.encode(), f"passkey user {subscriber_id}".encode(), hashlib.sha256
    ).digest()


def _descriptors(keys: list[Passkey]) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=webauthn.base64url_to_bytes(k.credential_id),
            transports=[AuthenticatorTransport(t) for t in k.transports if t in _TRANSPORTS] or None,
        )
        for k in keys
    ]


def registration_options(
    settings: Settings, subscriber_id: int, email: str, existing: list[Passkey]
) -> tuple[str, bytes]:
    """(options as JSON for the browser, the challenge to keep). A discoverable credential with
    user verification, so the passkey can also sign in without the password."""
    opts = webauthn.generate_registration_options(
        rp_id=rp_id(settings),
        rp_name=RP_NAME,
        user_name=email,
        user_id=user_handle(settings, subscriber_id),
        user_display_name=email,
        timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=_descriptors(existing),
    )
    return webauthn.options_to_json(opts), opts.challenge


def authentication_options(settings: Settings, allowed: list[Passkey] | None) -> tuple[str, bytes]:
    """For the second step `allowed` names the account's passkeys; None is passwordless: the
    browser offers whichever passkey of this site it holds."""
    opts = webauthn.generate_authentication_options(
        rp_id=rp_id(settings),
        timeout=TIMEOUT_MS,
        allow_credentials=_descriptors(allowed) if allowed is not None else [],
        user_verification=UserVerificationRequirement.REQUIRED
        if allowed is None
        else UserVerificationRequirement.PREFERRED,
    )
    return webauthn.options_to_json(opts), opts.challenge


def verify_registration(settings: Settings, credential: str, challenge: bytes) -> VerifiedRegistration:
    """Raises webauthn's InvalidRegistrationResponse (or ValueError for what is not JSON)."""
    return webauthn.verify_registration_response(
        credential=credential,
        expected_challenge=challenge,
        expected_rp_id=rp_id(settings),
        expected_origin=origin(settings),
        require_user_verification=True,
    )


def credential_id_of(credential: str) -> tuple[str, str | None]:
    """(credential id, user handle or None) a sign-in response names; ValueError when it names none."""
    data = json.loads(credential)
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        raise ValueError("no credential id")
    response = data.get("response")
    handle = response.get("userHandle") if isinstance(response, dict) else None
    return data["id"], handle if isinstance(handle, str) and handle else None


def verify_sign_in(
    settings: Settings, credential: str, challenge: bytes, key: Passkey, *, passwordless: bool
) -> int:
    """The authenticator's new sign counter; raises InvalidAuthenticationResponse for a bad
    signature, origin, RP id, challenge, a counter that did not go up, or (passwordless) no
    user verification."""
    verified = webauthn.verify_authentication_response(
        credential=credential,
        expected_challenge=challenge,
        expected_rp_id=rp_id(settings),
        expected_origin=origin(settings),
        credential_public_key=key.public_key,
        credential_current_sign_count=key.sign_count,
        require_user_verification=passwordless,
    )
    return int(verified.new_sign_count)


def handle_matches(settings: Settings, key: Passkey, handle: str | None) -> bool:
    return handle is None or hmac.compare_digest(
        handle, bytes_to_base64url(user_handle(settings, key.subscriber_id))
    )
