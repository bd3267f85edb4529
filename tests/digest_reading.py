"""A digest e-mail read as its reader reads it: which lines it shows, and how often."""

from __future__ import annotations

import re
from collections import Counter
from email.message import EmailMessage

from tests.reference_model import Line


def digest_lines(text: str) -> Counter[Line]:
    """The lines of a digest's text part, as the reference model writes them, each with the
    number of times the e-mail shows it."""
    out: Counter[Line] = Counter()
    label = direction = name = None
    watch: dict | None = None
    mode = None

    def close_watch() -> None:
        if watch is not None:
            out.update(
                [
                    (
                        "watch",
                        watch["name"],
                        watch["removed"],
                        tuple(sorted(watch["old"])),
                        tuple(sorted(watch["new"])),
                    )
                ]
            )

    in_watches = False
    for line in text.splitlines():
        if line == "OFFENDERS YOU TRACK":
            in_watches = True
        elif line == "WHY YOU RECEIVED THIS":
            break
        elif not in_watches:
            if m := re.fullmatch(r"Tracked address: (.*)", line):
                label = m.group(1)
            elif "(moved in):" in line:
                direction = "in"
            elif "(moved out):" in line:
                direction = "out"
            elif m := re.fullmatch(r"  \* (.*)", line):
                name = m.group(1)
            elif m := re.fullmatch(r"      (?:Former )?\w+ address: ([^,]*),.*", line):
                out.update([("near", label, name, direction, m.group(1))])
        else:
            if m := re.fullmatch(r"\* (.*)", line):
                close_watch()
                watch, mode = {"name": m.group(1), "removed": False, "old": [], "new": []}, None
            elif watch is not None and "No longer appears on the public registry" in line:
                watch["removed"] = True
            elif "Registered addresses before:" in line:
                mode = "old"
            elif "Registered addresses now:" in line:
                mode = "new"
            elif watch is not None and mode and (m := re.fullmatch(r"      - \w+: ([^,]*),.*", line)):
                watch[mode].append(m.group(1))
    close_watch()
    return out


def text_of(msg: EmailMessage) -> str:
    return msg.get_body(preferencelist=("plain",)).get_content()
