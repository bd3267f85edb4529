"""Subscriber accounts: enrollment, argon2id passwords, changing the address, deleting."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from streams.adapters import second_factors_db
from streams.adapters.account_tokens import (
    CHANGE_EMAIL,
    CONFIRM,
    DELETE,
    LIFETIMES,
    RESET,
    email_tokens,
    issue,
    purge_spent,
    retire,
    spend,
)
from streams.adapters.db import (
    digests,
    offender_watches,
    pending_alerts,
    subscribers,
    tracked_addresses,
    utcnow,
)
from streams.adapters.password_hashes import hash_password, needs_rehash, verify_password
from streams.adapters.settings_notices import settings_notices
from streams.adapters.sql import inserted_id
from streams.adapters.subscriber_store import SubscriberChange, subscriptions
from streams.adapters.web_db import web_sessions

# An enrollment nobody confirmed is forgotten when its confirmation link has run out.
UNCONFIRMED_KEPT = LIFETIMES[CONFIRM]


def _email(email: str) -> str:
    return email.strip().lower()


# --- subscribers -------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    subscriber_id: int
    email: str
    confirmed: bool
    status: str
    has_password: bool
    mail_bounces: int = 0  # digests refused for good in a row
    mail_suspended: bool = False  # digests stopped after repeated refusals
    last_bounce_reason: str | None = None  # the receiving server's words, addresses masked


def account(engine: Engine, subscriber_id: int) -> Account | None:
    with engine.connect() as conn:
        row = conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id)).first()
    if row is None:
        return None
    return Account(
        int(row.id),
        row.email,
        bool(row.confirmed),
        row.status,
        row.password_hash is not None,
        mail_bounces=int(row.mail_bounces or 0),
        mail_suspended=row.mail_suspended_at is not None,
        last_bounce_reason=row.last_bounce_reason,
    )


def resume_mail(engine: Engine, subscriber_id: int) -> bool:
    """The subscriber says the address works again: digests resume (with every alert kept
    meanwhile). The run of refusals is not forgotten, so the next refusal stops them again at
    once; a delivered digest clears it. False when the mail was not suspended."""
    with engine.begin() as conn:
        return (
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == subscriber_id, subscribers.c.mail_suspended_at.is_not(None))
                .values(mail_suspended_at=None)
            ).rowcount
            == 1
        )


def _now_active(conn: Connection, subscriber_id: int) -> SubscriberChange:
    """What a subscriber who just became confirmed brings to the stream."""
    status = conn.execute(select(subscribers.c.status).where(subscribers.c.id == subscriber_id)).scalar()
    if status != "active":
        return SubscriberChange(subscriber_id)
    circles, watches = subscriptions(conn, subscriber_id)
    return SubscriberChange(subscriber_id, circles=circles, watches=watches)


@dataclass(frozen=True)
class Enrollment:
    token: str | None  # a confirmation link's secret; None when the address already has an enrollment
    pending: bool = False  # that enrollment is still waiting for its confirmation


def create_enrollment(engine: Engine, email: str, password_hash: str, now: datetime) -> Enrollment:
    """A new, unconfirmed subscriber (with the password hashed by the caller) and its
    confirmation link.

    An address that already has an enrollment is left exactly as it was: a second attempt
    must not replace the password someone else may have chosen. (The site calls this after
    answering the form, so the page is the same either way: streams/web/account_requests.py.)
    """
    email = _email(email)
    try:
        with engine.begin() as conn:
            row = conn.execute(
                select(subscribers.c.id, subscribers.c.confirmed, subscribers.c.password_hash).where(
                    subscribers.c.email == email
                )
            ).first()
            if row is not None:
                return Enrollment(None, pending=not row.confirmed and row.password_hash is not None)
            sid = inserted_id(
                conn.execute(
                    insert(subscribers).values(
                        email=email,
                        confirmed=False,
                        status="active",
                        created_at=now,
                        password_hash=password_hash,
                    )
                )
            )
            return Enrollment(issue(conn, CONFIRM, sid, now))
    except IntegrityError:  # enrolled at the same moment by another request
        return Enrollment(None, pending=True)


def confirm(engine: Engine, raw: str, now: datetime) -> SubscriberChange | None:
    """Use a confirmation link; returns what to publish, or None for a link that does not work."""
    with engine.begin() as conn:
        tok = spend(conn, raw, CONFIRM, now)
        if tok is None:
            return None
        sid = int(tok.subscriber_id)
        conn.execute(update(subscribers).where(subscribers.c.id == sid).values(confirmed=True))
        return _now_active(conn, sid)


def authenticate(engine: Engine, email: str, password: str) -> int | None:
    """The subscriber id, or None. Unknown, unconfirmed and password-less accounts cost one
    argon2 verification like any other, and all answer None."""
    with engine.connect() as conn:
        row = conn.execute(
            select(
                subscribers.c.id, subscribers.c.password_hash, subscribers.c.confirmed, subscribers.c.status
            ).where(subscribers.c.email == _email(email))
        ).first()
    stored = row.password_hash if row is not None else None
    # (verify_password passes only with a stored hash: `row is None or stored is None` is for the type checker.)
    if (
        not verify_password(stored, password)
        or row is None
        or stored is None
        or not row.confirmed
        or row.status == "suspended"
    ):
        return None
    if needs_rehash(stored):
        with engine.begin() as conn:
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == row.id)
                .values(password_hash=hash_password(password))
            )
    return int(row.id)


def check_password(engine: Engine, subscriber_id: int, password: str) -> bool:
    with engine.connect() as conn:
        stored = conn.execute(
            select(subscribers.c.password_hash).where(subscribers.c.id == subscriber_id)
        ).scalar()
    return verify_password(stored, password)


def change_password(engine: Engine, subscriber_id: int, current: str, new: str) -> bool:
    """False when `current` is not the subscriber's password."""
    if not check_password(engine, subscriber_id, current):
        return False
    new_hash = hash_password(new)
    with engine.begin() as conn:
        conn.execute(
            update(subscribers).where(subscribers.c.id == subscriber_id).values(password_hash=new_hash)
        )
        # A reset link mailed earlier must not undo this change; a pending move may be an intruder's.
        retire(conn, subscriber_id, utcnow(), RESET, CHANGE_EMAIL)
    return True


# --- password reset ----------------------------------------------------------------------


def _subscriber_for_link(conn: Connection, email: str) -> int | None:
    return conn.execute(
        select(subscribers.c.id).where(
            subscribers.c.email == _email(email), subscribers.c.status != "suspended"
        )
    ).scalar()


def start_reset(engine: Engine, email: str, now: datetime) -> str | None:
    """A reset link for an enrolled address (also how imported subscribers choose a first password)."""
    with engine.begin() as conn:
        sid = _subscriber_for_link(conn, email)
        return issue(conn, RESET, int(sid), now) if sid is not None else None


def finish_reset(engine: Engine, raw: str, password: str, now: datetime) -> SubscriberChange | None:
    """Set the password through a reset link. Following a link mailed to the address proves
    the address as well as a confirmation does, so an unconfirmed account becomes confirmed
    and what it tracks is returned for publishing."""
    new_hash = hash_password(password)
    with engine.begin() as conn:
        tok = spend(conn, raw, RESET, now)
        if tok is None:
            return None
        sid = int(tok.subscriber_id)
        was_confirmed = conn.execute(select(subscribers.c.confirmed).where(subscribers.c.id == sid)).scalar()
        conn.execute(
            update(subscribers).where(subscribers.c.id == sid).values(password_hash=new_hash, confirmed=True)
        )
        # Whoever asked to move the alerts elsewhere may have known the old password.
        retire(conn, sid, now, RESET, CHANGE_EMAIL)
        # The mailed link proves the address: codes refused after many wrong ones work again.
        second_factors_db.clear_failures(conn, sid)
        return SubscriberChange(sid) if was_confirmed else _now_active(conn, sid)


# --- changing the e-mail address ---------------------------------------------------------


@dataclass(frozen=True)
class EmailChange:
    old_email: str
    token: str | None  # None: the new address already has an enrollment of its own


def start_email_change(engine: Engine, subscriber_id: int, new_email: str, now: datetime) -> EmailChange:
    new_email = _email(new_email)
    with engine.begin() as conn:
        old = conn.execute(select(subscribers.c.email).where(subscribers.c.id == subscriber_id)).scalar_one()
        retire(conn, subscriber_id, now, CHANGE_EMAIL)  # only the latest request counts
        taken = conn.execute(select(subscribers.c.id).where(subscribers.c.email == new_email)).first()
        if taken is not None:
            return EmailChange(old, None)
        return EmailChange(old, issue(conn, CHANGE_EMAIL, subscriber_id, now, new_email=new_email))


@dataclass(frozen=True)
class EmailChanged:
    subscriber_id: int
    old_email: str
    new_email: str
    changed: bool  # False: the new address was enrolled by someone else meanwhile


def finish_email_change(engine: Engine, raw: str, now: datetime) -> EmailChanged | None:
    try:
        with engine.begin() as conn:
            tok = spend(conn, raw, CHANGE_EMAIL, now)
            if tok is None:
                return None
            sid, new = int(tok.subscriber_id), tok.new_email
            old = conn.execute(select(subscribers.c.email).where(subscribers.c.id == sid)).scalar_one()
            if conn.execute(select(subscribers.c.id).where(subscribers.c.email == new)).first() is not None:
                return EmailChanged(sid, old, new, changed=False)
            # A new address starts with a clean record: refusals of the old one say nothing about it.
            conn.execute(
                update(subscribers)
                .where(subscribers.c.id == sid)
                .values(
                    email=new,
                    mail_bounces=0,
                    mail_suspended_at=None,
                    last_bounce_at=None,
                    last_bounce_reason=None,
                )
            )
            # Links mailed to the old address must not act on the account any more.
            retire(conn, sid, now, CONFIRM, RESET, DELETE, CHANGE_EMAIL)
            return EmailChanged(sid, old, new, changed=True)
    except IntegrityError:  # the unique e-mail, taken between our check and the update
        return None


# --- deleting ----------------------------------------------------------------------------


def _delete_everything(conn: Connection, subscriber_id: int) -> SubscriberChange:
    """Every row about the subscriber; the change withdraws all they tracked from the stream."""
    circles, watches = subscriptions(conn, subscriber_id)
    # pending_alerts has no foreign key (see db.py); the rest would cascade, but say it outright.
    for table in (
        pending_alerts,
        digests,
        tracked_addresses,
        offender_watches,
        email_tokens,
        web_sessions,
        settings_notices,
    ):
        conn.execute(delete(table).where(table.c.subscriber_id == subscriber_id))
    second_factors_db.delete_all(conn, subscriber_id)
    conn.execute(delete(subscribers).where(subscribers.c.id == subscriber_id))
    return SubscriberChange(subscriber_id, removed_circles=circles, removed_watches=watches)


def start_delete(engine: Engine, email: str, now: datetime) -> str | None:
    with engine.begin() as conn:
        sid = conn.execute(select(subscribers.c.id).where(subscribers.c.email == _email(email))).scalar()
        return issue(conn, DELETE, int(sid), now) if sid is not None else None


def finish_delete(engine: Engine, raw: str, now: datetime) -> SubscriberChange | None:
    with engine.begin() as conn:
        tok = spend(conn, raw, DELETE, now)
        if tok is None:
            return None
        return _delete_everything(conn, int(tok.subscriber_id))


def delete_with_password(engine: Engine, subscriber_id: int, password: str) -> SubscriberChange | None:
    """For a logged-in subscriber who typed their password again; None when it was wrong."""
    if not check_password(engine, subscriber_id, password):
        return None
    with engine.begin() as conn:
        return _delete_everything(conn, subscriber_id)


# --- housekeeping ------------------------------------------------------------------------


@dataclass(frozen=True)
class Purged:
    tokens: int
    enrollments: int


def purge_expired(engine: Engine, now: datetime) -> Purged:
    """Drop used and expired links, and web enrollments nobody confirmed in time.

    Imported subscribers (no password yet) are kept: they were enrolled in the old program.
    """
    with engine.begin() as conn:
        tokens = purge_spent(conn, now)
        stale = list(
            conn.execute(
                select(subscribers.c.id).where(
                    subscribers.c.confirmed.is_(False),
                    subscribers.c.password_hash.is_not(None),
                    subscribers.c.created_at < now - UNCONFIRMED_KEPT,
                )
            ).scalars()
        )
        for sid in stale:
            _delete_everything(conn, int(sid))
    return Purged(tokens=tokens, enrollments=len(stale))
