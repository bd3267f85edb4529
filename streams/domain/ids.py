"""A row id as it comes from outside (a link, a path, a query string): or nothing.

Only ASCII digits make an id (`str.isdigit()` also takes "²" and "١", which `int()` then
refuses or reads), and only as many as the integer primary keys hold: a longer number is no
one's id, not a database error.
"""

from __future__ import annotations

import re

MAX_ID = 2**31 - 1  # the primary keys are `integer` on PostgreSQL
_ID = re.compile(r"[1-9][0-9]{0,9}")


def parse_id(text: str) -> int | None:
    if not _ID.fullmatch(text):
        return None
    n = int(text)
    return n if n <= MAX_ID else None
