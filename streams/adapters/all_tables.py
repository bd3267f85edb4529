"""Every table of the project in one `MetaData`: the modules that declare tables, imported.

The migrations compare this with the database (streams/adapters/migrations/env.py), and the
tests build and empty databases with it.
"""

from __future__ import annotations

from streams.adapters import (  # noqa: F401 (importing a module declares its tables)
    account_tokens,
    accounts,
    db,
    gazetteer_db,
    geocode_cache,
    offender_search,
    ops_db,
    second_factors_db,
    settings_notices,
    sign_in_steps,
    web_db,
)
from streams.adapters.db import metadata

__all__ = ["metadata"]
