"""Address text in USPS Pub 28 form, the identity that tells a real move from a re-spelling."""

from __future__ import annotations

import re
from typing import Any

from scourgify import normalize_address_record
from scourgify.exceptions import AddressNormalizationError

from streams.domain.geocoding import PROVIDED
from streams.domain.model import Address

_DROP = re.compile(r"[.']")  # "P.O." and "O'Fallon" must read the same without them
_SPACE = re.compile(r"[^\w#/-]+")


def _plain(text: str) -> str:
    return " ".join(_SPACE.sub(" ", _DROP.sub("", text.upper())).split())


def zip5(zip_code: object, *, restore_leading_zeros: bool = False) -> str:
    """The five-digit ZIP of a ZIP or ZIP+4 ('' when there is none): the one normal form.

    ZIP+4 suffixes come and go between registry extracts; five digits name the place. A data
    file that read ZIPs as numbers lost their leading zeros (none in Missouri, many in New
    England): `restore_leading_zeros` gives 3 or 4 digits theirs back. What a person typed is
    never padded: "651" is not "00651".
    """
    digits = re.sub(r"\D", "", str(zip_code or ""))
    if restore_leading_zeros and 3 <= len(digits) < 5:
        digits = digits.zfill(5)
    return digits[:5] if len(digits) >= 5 else ""


def normalize_address(street: str, city: str, state: str, zip: str) -> str:  # noqa: A002
    zip5_text = zip5(zip)
    try:
        rec = normalize_address_record(
            {"address_line_1": street, "city": city, "state": state, "postal_code": zip5_text}
        )
    except AddressNormalizationError:
        # PO boxes, rural routes and garbage: good enough to tell two texts apart, and such
        # text is never geocoded from here.
        return f"{_plain(street)}, {_plain(city)}, {_plain(state)} {zip5_text}".strip()
    line = " ".join(p for p in (rec["address_line_1"], rec.get("address_line_2")) if p)
    # scourgify keeps "ST. LOUIS" but writes "ST LOUIS" for "St Louis": one city, one spelling.
    return f"{_plain(line)}, {_plain(rec['city'])}, {rec['state']} {zip5_text}".strip()


def _coord(v: Any) -> float | None:
    return None if v is None or v == "" else float(v)


def make_address(d: dict[str, Any]) -> Address:
    street, city, state, zip_code = (str(d.get(k) or "") for k in ("street", "city", "state", "zip"))
    return Address(
        type=d["type"],
        street=street,
        city=city,
        state=state,
        zip=zip_code,
        county=d.get("county"),
        lat=(lat := _coord(d.get("lat"))),
        lon=_coord(d.get("lon")),
        normalized=normalize_address(street, city, state, zip_code),
        precision=d.get("precision") or (PROVIDED if lat is not None else None),
    )
