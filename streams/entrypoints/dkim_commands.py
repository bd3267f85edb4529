"""`sor-notify dkim record`: the DNS TXT record that lets receivers check the mail's signature."""

from __future__ import annotations

import argparse

from streams.adapters.dkim_keys import record_name, record_value
from streams.bootstrap import dkim_key_for
from streams.entrypoints.usage import UsageError
from streams.settings import Settings


def cmd_dkim_record(settings: Settings, args: argparse.Namespace) -> int:
    if settings.dkim is None:
        raise UsageError("SOR_DKIM=off: this service signs nothing, so there is no record to publish")
    name = record_name(settings.dkim.selector, settings.dkim.domain)
    value = record_value(dkim_key_for(settings.dkim))
    # A zone file holds strings of at most 255 characters; most DNS panels split it themselves.
    chunks = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    print(f"name:  {name}")
    print("type:  TXT")
    print(f"value: {value}")
    print(f"zone:  {name}. 3600 IN TXT ( {chunks} )")
    return 0
