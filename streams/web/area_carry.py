"""An address carried from "e-mail me about this area" through enroll, confirm and sign-in to a filled-in form.

It travels as plain query fields (street, city, state, zip, radius), read back through one
check at every step: only an address and one of the eight distances, never a link to follow,
so the last step always lands on this site's own form, and nothing secret rides along.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from streams.web.display import RADIUS_TEXT, clean

_STATE = re.compile(r"[A-Z]{2}")
_ZIP = re.compile(r"[0-9]{5}(-?[0-9]{4})?")
FIELDS = ("street", "city", "state", "zip", "radius")


@dataclass(frozen=True)
class AreaWish:
    street: str
    city: str
    state: str
    zip: str
    radius: str

    @classmethod
    def read(cls, q: Mapping[str, Any]) -> AreaWish | None:
        """The address the query carries, or None when any part of it is not one."""
        street, city = clean(q.get("street"), 200), clean(q.get("city"), 100)
        state, zip_ = clean(q.get("state"), 20).upper(), clean(q.get("zip"), 20)
        radius = clean(q.get("radius"), 20)
        if not (street and city and _STATE.fullmatch(state) and radius in RADIUS_TEXT):
            return None
        if zip_ and not _ZIP.fullmatch(zip_):
            return None
        return cls(street, city, state, zip_, radius)

    def query(self) -> str:
        return urlencode({k: getattr(self, k) for k in FIELDS if getattr(self, k)})

    @property
    def one_line(self) -> str:
        return f"{self.street}, {self.city}, {self.state} {self.zip}".strip()


def wish_of(request: web.Request) -> AreaWish | None:
    return AreaWish.read(request.query)


def carried(request: web.Request) -> str:
    """ "?street=…" to append to the next step's address, or "" when nothing is carried."""
    wish = wish_of(request)
    return f"?{wish.query()}" if wish else ""
