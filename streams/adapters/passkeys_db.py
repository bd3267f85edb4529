"""Passkeys among a subscriber's second factors: their credentials, public keys and sign counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine

from streams.adapters.second_factors_db import MAX_LABEL, MAX_PASSKEYS, PASSKEY, codes_if_none, second_factors
from streams.adapters.sql import inserted_id


@dataclass(frozen=True)
class Passkey:
    id: int
    subscriber_id: int
    credential_id: str
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]


def _passkey(r: Any) -> Passkey:
    return Passkey(
        int(r.id),
        int(r.subscriber_id),
        r.credential_id,
        bytes(r.public_key),
        int(r.sign_count or 0),
        tuple(t for t in (r.transports or "").split(",") if t),
    )


def passkeys_of(engine: Engine, subscriber_id: int) -> list[Passkey]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(second_factors)
            .where(second_factors.c.subscriber_id == subscriber_id, second_factors.c.kind == PASSKEY)
            .order_by(second_factors.c.id)
        )
        return [_passkey(r) for r in rows]


def passkey_by_credential(engine: Engine, credential_id: str) -> Passkey | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(second_factors).where(
                second_factors.c.credential_id == credential_id, second_factors.c.kind == PASSKEY
            )
        ).first()
    return None if row is None else _passkey(row)


@dataclass(frozen=True)
class PasskeyAdded:
    factor_id: int | None  # None: refused (too many, or the credential is registered already)
    codes_set: bool = False


def add_passkey(
    engine: Engine,
    subscriber_id: int,
    *,
    credential_id: str,
    public_key: bytes,
    sign_count: int,
    transports: list[str],
    label: str,
    code_hashes: list[str],
    now: datetime,
) -> PasskeyAdded:
    with engine.begin() as conn:
        have = conn.execute(
            select(func.count())
            .select_from(second_factors)
            .where(second_factors.c.subscriber_id == subscriber_id, second_factors.c.kind == PASSKEY)
        ).scalar_one()
        taken = conn.execute(
            select(second_factors.c.id).where(second_factors.c.credential_id == credential_id)
        ).first()
        if have >= MAX_PASSKEYS or taken is not None:
            return PasskeyAdded(None)
        fid = inserted_id(
            conn.execute(
                insert(second_factors).values(
                    subscriber_id=subscriber_id,
                    kind=PASSKEY,
                    label=label[:MAX_LABEL],
                    credential_id=credential_id,
                    public_key=public_key,
                    sign_count=sign_count,
                    transports=",".join(transports)[:200],
                    created_at=now,
                )
            )
        )
        return PasskeyAdded(fid, codes_if_none(conn, subscriber_id, code_hashes, now))


def accept_sign_count(engine: Engine, factor_id: int, seen: int, new: int, now: datetime) -> bool:
    """Move the passkey's counter from `seen` to `new`; False when another sign-in moved it meanwhile
    (the same assertion twice, or a cloned authenticator)."""
    with engine.begin() as conn:
        return (
            conn.execute(
                update(second_factors)
                .where(second_factors.c.id == factor_id, second_factors.c.sign_count == seen)
                .values(sign_count=new, last_used_at=now)
            ).rowcount
            == 1
        )
