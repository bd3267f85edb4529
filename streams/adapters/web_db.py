"""Tables of the web site: browser sessions (server-side, so logout and rotation are real)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Table, Text

from streams.adapters.db import metadata

web_sessions = Table(
    "web_sessions",
    metadata,
    # SHA-256 of the cookie value: a database leak does not hand out live sessions.
    Column("id_hash", String(64), primary_key=True),
    Column(
        "subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=True, index=True
    ),
    Column("csrf_token", String(64), nullable=False),
    Column("flash", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)
