"""A subscriber's second factors (an authenticator app, passkeys) and single-use recovery codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from streams.adapters.db import metadata

TOTP = "totp"
PASSKEY = "passkey"
MAX_PASSKEYS = 10  # a phone, a laptop, a security key or two: more is somebody else's
MAX_LABEL = 60
# Wrong codes in a row after which codes are refused until a password reset (SP 800-63B-4
# 3.2.2 allows at most 100); a passkey, which cannot be guessed, still signs in.
MAX_FAILURES = 100

second_factors = Table(
    "second_factors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("kind", String(16), nullable=False),  # TOTP or PASSKEY
    Column("label", String(MAX_LABEL), nullable=False),
    # TOTP: the key, sealed (streams/adapters/sealed_secrets.py), and the last time step
    # accepted: a code is good once (SP 800-63B-4 3.1.4.1).
    Column("totp_secret", Text, nullable=True),
    Column("last_used_step", BigInteger, nullable=True),
    # Passkey: the credential id (base64url), its COSE public key, the authenticator's counter.
    Column("credential_id", String(1400), nullable=True, unique=True),
    Column("public_key", LargeBinary, nullable=True),
    Column("sign_count", BigInteger, nullable=True),
    Column("transports", String(200), nullable=True),  # comma-separated, as the browser told them
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    # Wrong codes in a row, kept on each of the subscriber's factors alike (SP 800-63B-4 3.2.2).
    Column("failed_attempts", Integer, nullable=False, default=0, server_default="0"),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("code_hash", String(64), nullable=False),  # SHA-256 of the normalized code
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("subscriber_id", "code_hash"),
)


@dataclass(frozen=True)
class Factor:
    id: int
    kind: str
    label: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class Totp:
    id: int
    sealed_secret: str
    last_used_step: int | None


# --- reading ------------------------------------------------------------------------------


def has_any(engine: Engine, subscriber_id: int) -> bool:
    """Whether signing in takes a second step (and, for the password rules, a second factor exists)."""
    with engine.connect() as conn:
        return (
            conn.execute(
                select(second_factors.c.id).where(second_factors.c.subscriber_id == subscriber_id).limit(1)
            ).first()
            is not None
        )


def factors(engine: Engine, subscriber_id: int) -> list[Factor]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(second_factors)
            .where(second_factors.c.subscriber_id == subscriber_id)
            .order_by(second_factors.c.id)
        )
        return [Factor(int(r.id), r.kind, r.label, r.created_at, r.last_used_at) for r in rows]


def totp_of(engine: Engine, subscriber_id: int) -> Totp | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(second_factors).where(
                second_factors.c.subscriber_id == subscriber_id, second_factors.c.kind == TOTP
            )
        ).first()
    if row is None:
        return None
    return Totp(int(row.id), row.totp_secret, None if row.last_used_step is None else int(row.last_used_step))


def recovery_codes_left(engine: Engine, subscriber_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(recovery_codes)
                .where(recovery_codes.c.subscriber_id == subscriber_id, recovery_codes.c.used_at.is_(None))
            ).scalar_one()
        )


# --- adding -------------------------------------------------------------------------------


def _replace_codes(conn: Connection, subscriber_id: int, code_hashes: list[str], now: datetime) -> None:
    conn.execute(delete(recovery_codes).where(recovery_codes.c.subscriber_id == subscriber_id))
    if code_hashes:
        conn.execute(
            insert(recovery_codes),
            [{"subscriber_id": subscriber_id, "code_hash": h, "created_at": now} for h in code_hashes],
        )


def _unused_codes(conn: Connection, subscriber_id: int) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(recovery_codes)
            .where(recovery_codes.c.subscriber_id == subscriber_id, recovery_codes.c.used_at.is_(None))
        ).scalar_one()
    )


def add_totp(
    engine: Engine,
    subscriber_id: int,
    sealed_secret: str,
    label: str,
    accepted_step: int,
    code_hashes: list[str],
    now: datetime,
) -> bool:
    """The authenticator app, confirmed by a code of `accepted_step` (which cannot then sign in).
    Recovery codes are set from `code_hashes` when the account has none left; returns whether
    they were (so the page shows them), False also when an app was already there."""
    with engine.begin() as conn:
        if (
            conn.execute(
                select(second_factors.c.id).where(
                    second_factors.c.subscriber_id == subscriber_id, second_factors.c.kind == TOTP
                )
            ).first()
            is not None
        ):
            return False
        conn.execute(
            insert(second_factors).values(
                subscriber_id=subscriber_id,
                kind=TOTP,
                label=label[:MAX_LABEL],
                totp_secret=sealed_secret,
                last_used_step=accepted_step,
                created_at=now,
            )
        )
        return codes_if_none(conn, subscriber_id, code_hashes, now)


def codes_if_none(conn: Connection, subscriber_id: int, code_hashes: list[str], now: datetime) -> bool:
    """Set recovery codes from `code_hashes` when the subscriber has no unused one left; whether it did."""
    if _unused_codes(conn, subscriber_id):
        return False
    _replace_codes(conn, subscriber_id, code_hashes, now)
    return True


def new_recovery_codes(engine: Engine, subscriber_id: int, code_hashes: list[str], now: datetime) -> bool:
    """Replace every recovery code (used or not); False when the account has no factor to recover."""
    with engine.begin() as conn:
        if (
            conn.execute(
                select(second_factors.c.id).where(second_factors.c.subscriber_id == subscriber_id).limit(1)
            ).first()
            is None
        ):
            return False
        _replace_codes(conn, subscriber_id, code_hashes, now)
        return True


# --- using --------------------------------------------------------------------------------


def accept_totp_step(engine: Engine, factor_id: int, step: int, now: datetime) -> bool:
    """Record `step` as used; False when it (or a later one) was used already, also by a
    request racing this one: the condition is checked in the update itself."""
    with engine.begin() as conn:
        return (
            conn.execute(
                update(second_factors)
                .where(
                    second_factors.c.id == factor_id,
                    or_(second_factors.c.last_used_step.is_(None), second_factors.c.last_used_step < step),
                )
                .values(last_used_step=step, last_used_at=now)
            ).rowcount
            == 1
        )


def use_recovery_code(engine: Engine, subscriber_id: int, code_hash: str, now: datetime) -> bool:
    """Spend one recovery code; False when it is not one of the subscriber's unused codes."""
    with engine.begin() as conn:
        return (
            conn.execute(
                update(recovery_codes)
                .where(
                    recovery_codes.c.subscriber_id == subscriber_id,
                    recovery_codes.c.code_hash == code_hash,
                    recovery_codes.c.used_at.is_(None),
                )
                .values(used_at=now)
            ).rowcount
            == 1
        )


def failures(engine: Engine, subscriber_id: int) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            select(func.max(second_factors.c.failed_attempts)).where(
                second_factors.c.subscriber_id == subscriber_id
            )
        ).scalar()
    return int(found or 0)


def count_failure(engine: Engine, subscriber_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(second_factors)
            .where(second_factors.c.subscriber_id == subscriber_id)
            .values(failed_attempts=second_factors.c.failed_attempts + 1)
        )


def clear_failures(conn: Connection, subscriber_id: int) -> None:
    """After a sign-in with a factor, or a password reset through the mailed link."""
    conn.execute(
        update(second_factors)
        .where(second_factors.c.subscriber_id == subscriber_id)
        .values(failed_attempts=0)
    )


def signed_in_with_factor(engine: Engine, subscriber_id: int) -> None:
    with engine.begin() as conn:
        clear_failures(conn, subscriber_id)


# --- removing -----------------------------------------------------------------------------


def remove(engine: Engine, subscriber_id: int, factor_id: int) -> Factor | None:
    """Remove one of the subscriber's factors; with the last one go the recovery codes."""
    with engine.begin() as conn:
        row = conn.execute(
            select(second_factors).where(
                second_factors.c.id == factor_id, second_factors.c.subscriber_id == subscriber_id
            )
        ).first()
        if row is None:
            return None
        conn.execute(delete(second_factors).where(second_factors.c.id == factor_id))
        left = conn.execute(
            select(second_factors.c.id).where(second_factors.c.subscriber_id == subscriber_id).limit(1)
        ).first()
        if left is None:
            conn.execute(delete(recovery_codes).where(recovery_codes.c.subscriber_id == subscriber_id))
        return Factor(int(row.id), row.kind, row.label, row.created_at, row.last_used_at)


def delete_all(conn: Connection, subscriber_id: int) -> None:
    """For deleting an enrollment (the foreign keys cascade too; this says it outright)."""
    conn.execute(delete(recovery_codes).where(recovery_codes.c.subscriber_id == subscriber_id))
    conn.execute(delete(second_factors).where(second_factors.c.subscriber_id == subscriber_id))
