"""How much one subscriber may track: the web forms and the subscriber import hold to the same limits."""

from __future__ import annotations

MAX_ADDRESSES = 5
MAX_OFFENDERS = 5
