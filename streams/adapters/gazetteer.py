"""The local gazetteer: address points first, then TIGER ranges, otherwise a reason and what can be mapped."""

from __future__ import annotations

import asyncio
import difflib
import re
from dataclasses import dataclass

from scourgify import normalize_address_record
from scourgify.exceptions import AddressNormalizationError
from sqlalchemy import or_, select
from sqlalchemy.engine import Connection, Engine

from streams.adapters.gazetteer_db import (
    address_points,
    gazetteer_streets,
    normalize_city,
    normalize_number,
    normalize_state,
    normalize_street,
    number_int,
    plain,
    street_ranges,
    zip5,
)
from streams.adapters.gazetteer_rows import MISSOURI_BOUNDS, Bounds
from streams.domain.geocoding import (
    ADDRESS_POINT,
    INTERPOLATED,
    GeocodeFailure,
    GeocodeQuery,
    GeocodeResult,
    Suggestion,
)
from streams.domain.geometry import (
    SIDE_OFFSET_M,
    geodesic_distance_m,
    point_along,
)

SOURCE = "gazetteer"
# Hits for one number further apart than this are different places, not one building.
SAME_PLACE_M = 150.0
MAX_SUGGESTIONS = 5
EXAMPLE = "1510 E Elm St"

_PLACEHOLDER = {"city": "ANYTOWN", "state": "MO", "postal_code": "65101"}
_BOX = re.compile(
    r"\b(P ?O ?BOX|POST OFFICE BOX|POB|(RR|RURAL ROUTE|HC|HCR|STAR ROUTE) ?\d+ BOX|BOX \d+|GENERAL DELIVERY)\b"
)
_LINE = re.compile(r"^(\d+(?:-?[A-Z])?)(?: (\d+/\d+))?(?: (.+))?$")
_UNIT_WORD = re.compile(r"^(APT|APARTMENT|UNIT|STE|SUITE|#|NO|LOT|RM|ROOM|BLDG|FL|TRLR|SPC)\b\s*")
_DIRECTIONS = frozenset({"N", "S", "E", "W", "NE", "NW", "SE", "SW"})


# --- the street line ----------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedStreet:
    number: str  # "1510", "1510A", "1510 1/2"
    number_int: int
    street_norm: str  # "E ELM ST"
    unit: str  # "APT 4" or ""


def parse_street_line(
    street: str, city: str = "", state: str = "", zip_code: str = ""
) -> ParsedStreet | GeocodeFailure:
    """House number, normalized street and unit of a street line, or why it cannot be mapped."""
    text = plain(street)
    if not text:
        return GeocodeFailure(
            "unparseable", f"The street line is empty; enter a house number and street, e.g. '{EXAMPLE}'."
        )
    if _BOX.search(text):
        return GeocodeFailure(
            "unparseable",
            f"'{street.strip()}' is a box or route address, which has no place on a map; "
            "enter the street address where the person lives.",
        )
    rec = None
    # The street line alone first; if it also names the city, scourgify needs the real one.
    for last_line in (_PLACEHOLDER, {"city": city, "state": state or "MO", "postal_code": zip5(zip_code)}):
        try:
            rec = normalize_address_record({"address_line_1": street, **last_line})
            break
        except (AddressNormalizationError, ValueError, TypeError):
            continue
    if rec is None:
        return GeocodeFailure(
            "unparseable",
            f"'{street.strip()}' does not read as a street address; enter a house number and street, e.g. '{EXAMPLE}'.",
        )
    m = _LINE.match(plain(rec["address_line_1"]))
    if not m or not m.group(3):
        return GeocodeFailure(
            "unparseable",
            f"'{street.strip()}' does not start with a house number; enter it as e.g. '{EXAMPLE}'.",
        )
    number = normalize_number(" ".join(p for p in (m.group(1), m.group(2)) if p))
    n = number_int(number)
    assert n is not None  # the pattern starts with digits
    return ParsedStreet(number, n, normalize_street(m.group(3)), plain(rec.get("address_line_2") or ""))


def display_street(street_norm: str) -> str:
    """'E ELM ST' -> 'E Elm St', for sentences."""
    return " ".join(w if w in _DIRECTIONS else w.capitalize() for w in street_norm.split())


def _unit_key(unit: str) -> str:
    return _UNIT_WORD.sub("", unit).strip()


# --- geometry along a street ----------------------------------------------------------------


# --- rows -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    """A mappable house: a surveyed point or a number placed along a range."""

    number: str
    number_int: int
    street: str
    unit: str
    city: str
    zip: str
    lat: float
    lon: float
    precision: str


@dataclass(frozen=True)
class _Side:
    """One side of one range segment: its numbers run from `start` (line start) to `end`."""

    street: str
    city: str
    zip: str
    start: int
    end: int
    left: bool
    line: tuple[tuple[float, float], ...]

    def covers(self, n: int) -> bool:
        if not min(self.start, self.end) <= n <= max(self.start, self.end):
            return False
        # A side holds the odd or the even numbers; a mixed range takes either.
        return self.start % 2 != self.end % 2 or n % 2 == self.start % 2

    def place(self, n: int, offset_m: float) -> _Place:
        fraction = 0.5 if self.start == self.end else (n - self.start) / (self.end - self.start)
        lat, lon = point_along(self.line, fraction, left=self.left, offset_m=offset_m)
        return _Place(str(n), n, self.street, "", self.city, self.zip, lat, lon, INTERPOLATED)


@dataclass
class _Rows:
    points: list[_Place]
    sides: list[_Side]

    @property
    def empty(self) -> bool:
        return not self.points and not self.sides

    def cities(self) -> set[str]:
        return {p.city for p in self.points if p.city} | {s.city for s in self.sides if s.city}

    def in_city(self, city: str) -> _Rows:
        return _Rows([p for p in self.points if p.city == city], [s for s in self.sides if s.city == city])

    def in_zip(self, zip_code: str) -> _Rows:
        return _Rows(
            [p for p in self.points if p.zip == zip_code], [s for s in self.sides if s.zip == zip_code]
        )


# --- the geocoder ---------------------------------------------------------------------------


class LocalGazetteer:
    """Geocoder over the imported gazetteer; it answers a house it knows, or says why not."""

    def __init__(
        self,
        engine: Engine,
        state: str = "MO",
        bounds: Bounds = MISSOURI_BOUNDS,
        *,
        offset_m: float = SIDE_OFFSET_M,
    ) -> None:
        self.engine = engine
        self.state = normalize_state(state)
        self.bounds = bounds
        self.offset_m = offset_m

    async def geocode(self, query: GeocodeQuery) -> GeocodeResult | GeocodeFailure:
        return await asyncio.to_thread(self.geocode_sync, query)

    def geocode_sync(self, query: GeocodeQuery) -> GeocodeResult | GeocodeFailure:
        parsed = parse_street_line(query.street, query.city, query.state, query.zip)
        if isinstance(parsed, GeocodeFailure):
            return parsed
        state = normalize_state(query.state)
        if state and state != self.state:
            return GeocodeFailure(
                "outside_state",
                f"{query.state.strip()} is outside {self.state}; this service maps {self.state} addresses only.",
            )
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="DEFERRED")  # reads only: no write lock
            return _Search(self, conn, query, parsed).run()

    def inside(self, lat: float, lon: float) -> bool:
        b = self.bounds
        return b[0] <= lon <= b[2] and b[1] <= lat <= b[3]


class _Search:
    """One lookup: decides the scope (ZIP or city), then a house in it."""

    def __init__(
        self, gaz: LocalGazetteer, conn: Connection, query: GeocodeQuery, parsed: ParsedStreet
    ) -> None:
        self.gaz, self.conn, self.q, self.p = gaz, conn, query, parsed
        self.city = normalize_city(query.city)
        self.zip = zip5(query.zip)
        self.place_text = " ".join(x for x in (" ".join(query.city.split()), self.zip) if x)
        self.street_text = display_street(parsed.street_norm)
        self.address_text = f"{parsed.number} {self.street_text}"

    # -- the decision ----------------------------------------------------------------------

    def run(self) -> GeocodeResult | GeocodeFailure:
        zip_cities = self._cities_in_zip() if self.zip else set()
        zip_known = bool(zip_cities)
        city_known = bool(self.city) and self._city_known()
        if not zip_known and not city_known:
            return self._unknown_place()
        named_in_zip = zip_cities - {""}
        if zip_known and city_known and named_in_zip and self.city not in named_in_zip:
            return self._city_zip_disagree(named_in_zip)
        if zip_known:
            rows = self._rows(zip_code=self.zip)
            if rows.empty and city_known:
                elsewhere = self._rows(city=self.city)
                if not elsewhere.empty:
                    return self._wrong_zip(elsewhere)
        else:
            rows = self._rows(city=self.city)
        if rows.empty:
            return self._unknown_street(zip_known)
        settled = self._settle_city(rows, city_known)
        if isinstance(settled, GeocodeFailure):
            return settled
        return self._resolve(settled)

    def _settle_city(self, rows: _Rows, city_known: bool) -> _Rows | GeocodeFailure:
        """In a ZIP shared by several towns, the street may be in more than one of them."""
        named = rows.cities()
        if not named or named == {self.city}:
            return rows
        if self.city in named:
            return rows.in_city(self.city)
        if len(named) == 1 and (not self.city or not city_known):
            # One town has this street here; the query names none, or a postal name the
            # data does not use ("Holts Summit" mail in a ZIP mapped as another town).
            return rows
        towns = sorted(named)
        suggestions = [s for s in (self._best(rows.in_city(t)) for t in towns) if s]
        where = " and ".join(_title(t) for t in towns)
        if self.city:
            msg = (
                f"{self.street_text} in ZIP {self.zip} is in {where}, not {_title(self.city)}; "
                "pick the address you mean or correct the city."
            )
        else:
            msg = (
                f"There is a {self.street_text} in {where} within ZIP {self.zip}; add the city to say which."
            )
        return GeocodeFailure("ambiguous_city", msg, tuple(suggestions[:MAX_SUGGESTIONS]))

    def _resolve(self, rows: _Rows) -> GeocodeResult | GeocodeFailure:
        hits = self._hits(rows)
        if not hits:
            return self._out_of_range(rows)
        first = hits[0]
        far = [h for h in hits if geodesic_distance_m(first.lat, first.lon, h.lat, h.lon) > SAME_PLACE_M]
        if far:
            # The same number on the same street in two places the query does not tell apart.
            groups: dict[tuple[str, str], _Place] = {}
            for h in hits:
                groups.setdefault((h.city, h.zip), h)
            places = ", ".join(f"{_title(c) or '?'} {z}".strip() for c, z in groups)
            return GeocodeFailure(
                "ambiguous_city",
                f"{self.address_text} exists in more than one place ({places}); give the city and ZIP code.",
                tuple(self._suggestion(h) for h in list(groups.values())[:MAX_SUGGESTIONS]),
            )
        return GeocodeResult(first.lat, first.lon, first.precision, SOURCE, matched=self._one_line(first))

    # -- finding a house -------------------------------------------------------------------

    def _hits(self, rows: _Rows) -> list[_Place]:
        """Surveyed points for this number (the requested unit first), else range positions."""
        want = _unit_key(self.p.unit)
        points = [pt for pt in rows.points if pt.number == self.p.number]
        points.sort(key=lambda pt: (_unit_key(pt.unit) != want, pt.unit != ""))
        hits = [pt for pt in points if self.gaz.inside(pt.lat, pt.lon)]
        if hits:
            return hits
        placed = [
            s.place(self.p.number_int, self.gaz.offset_m) for s in rows.sides if s.covers(self.p.number_int)
        ]
        return [pl for pl in placed if self.gaz.inside(pl.lat, pl.lon)]

    def _mappable(self, rows: _Rows) -> list[_Place]:
        """Every number on the street that can be put on the map: points and range ends."""
        seen: dict[str, _Place] = {}
        for pt in rows.points:
            seen.setdefault(pt.number, pt)
        for s in rows.sides:
            for n in (s.start, s.end):
                if str(n) not in seen:
                    seen[str(n)] = s.place(n, self.gaz.offset_m)
        return [pl for pl in seen.values() if self.gaz.inside(pl.lat, pl.lon)]

    def _nearest(self, rows: _Rows, limit: int = MAX_SUGGESTIONS) -> list[_Place]:
        n = self.p.number_int
        return sorted(
            self._mappable(rows),
            key=lambda pl: (abs(pl.number_int - n), pl.number_int % 2 != n % 2, pl.number_int, pl.number),
        )[:limit]

    def _best(self, rows: _Rows) -> Suggestion | None:
        """This number if it is there, else the nearest mappable one: one suggestion per place."""
        hits = self._hits(rows) or self._nearest(rows, 1)
        return self._suggestion(hits[0]) if hits else None

    # -- failures --------------------------------------------------------------------------

    def _unknown_place(self) -> GeocodeFailure:
        if not self.zip and not self.city:
            return GeocodeFailure(
                "unknown_city",
                f"Add the city and ZIP code to {self.address_text}; the street alone does not say where it is.",
            )
        if self.zip and self.city:
            what = f"Neither {' '.join(self.q.city.split())} nor ZIP {self.zip} is"
        elif self.zip:
            what = f"ZIP {self.zip} is"
        else:
            what = f"{' '.join(self.q.city.split())} is"
        return GeocodeFailure(
            "unknown_city", f"{what} in our map data of {self.gaz.state}; check the city and ZIP code."
        )

    def _city_zip_disagree(self, named_in_zip: set[str]) -> GeocodeFailure:
        suggestions = [
            s
            for s in (self._best(self._rows(zip_code=self.zip)), self._best(self._rows(city=self.city)))
            if s
        ]
        towns = " and ".join(_title(t) for t in sorted(named_in_zip)[:3])
        return GeocodeFailure(
            "ambiguous_city",
            f"{' '.join(self.q.city.split())} and ZIP {self.zip} do not go together (ZIP {self.zip} is {towns}); "
            "check the city and ZIP code.",
            tuple(suggestions),
        )

    def _wrong_zip(self, elsewhere: _Rows) -> GeocodeFailure:
        zips = sorted({p.zip for p in elsewhere.points if p.zip} | {s.zip for s in elsewhere.sides if s.zip})
        suggestions = [s for s in (self._best(elsewhere.in_zip(z)) for z in zips) if s]
        in_zips = f" in ZIP {', '.join(zips)}" if zips else ""
        return GeocodeFailure(
            "ambiguous_city",
            f"There is no {self.street_text} in ZIP {self.zip}, but {_title(self.city)} has one{in_zips}; "
            "check the ZIP code.",
            tuple(suggestions[:MAX_SUGGESTIONS]),
        )

    def _unknown_street(self, zip_known: bool) -> GeocodeFailure:
        where = self.place_text if zip_known else _title(self.city)
        suggestions: list[Suggestion] = []
        names = self._street_names(zip_known)
        for name in difflib.get_close_matches(self.p.street_norm, names, n=3, cutoff=0.75):
            scope = {"zip_code": self.zip} if zip_known else {"city": self.city}
            best = self._best(self._rows(street=name, **scope))
            if best:
                suggestions.append(best)
        return GeocodeFailure(
            "unknown_street",
            f"There is no {self.street_text} in {where} in our map data; check the street name"
            + (" or pick one of the similar streets." if suggestions else "."),
            tuple(suggestions),
        )

    def _out_of_range(self, rows: _Rows) -> GeocodeFailure:
        nearest = self._nearest(rows)
        mapped = [pl.number_int for pl in self._mappable(rows)]
        n = self.p.number_int
        head = f"There is no {self.address_text} in {self.place_text}"
        if mapped and (n < min(mapped) or n > max(mapped)):
            msg = f"{head}; the street's mapped numbers run from {min(mapped)} to {max(mapped)}."
        elif nearest:
            near = sorted({pl.number for pl in nearest[:2]}, key=lambda s: (number_int(s) or 0, s))
            msg = f"{head} in our map data; the nearest mapped numbers are {' and '.join(near)}."
        else:
            msg = f"{head} in our map data, and no number on that street can be mapped."
        return GeocodeFailure("number_out_of_range", msg, tuple(self._suggestion(pl) for pl in nearest))

    # -- SQL -------------------------------------------------------------------------------

    def _cities_in_zip(self) -> set[str]:
        t = gazetteer_streets
        return set(self.conn.execute(select(t.c.city_norm).where(t.c.zip == self.zip).distinct()).scalars())

    def _city_known(self) -> bool:
        t = gazetteer_streets
        return (
            self.conn.execute(select(t.c.id).where(t.c.city_norm == self.city).limit(1)).first() is not None
        )

    def _street_names(self, by_zip: bool) -> list[str]:
        t = gazetteer_streets
        where = t.c.zip == self.zip if by_zip else t.c.city_norm == self.city
        return list(self.conn.execute(select(t.c.street_norm).where(where).distinct()).scalars())

    def _rows(
        self, *, street: str | None = None, zip_code: str | None = None, city: str | None = None
    ) -> _Rows:
        street = street or self.p.street_norm
        ap, sr = address_points, street_ranges
        pq = select(ap.c.number, ap.c.number_int, ap.c.unit, ap.c.city_norm, ap.c.zip, ap.c.lat, ap.c.lon)
        rq = select(sr)
        if zip_code is not None:
            pq = pq.where(ap.c.street_norm == street, ap.c.zip == zip_code)
            rq = rq.where(
                sr.c.street_norm == street, or_(sr.c.zip_left == zip_code, sr.c.zip_right == zip_code)
            )
        else:
            pq = pq.where(ap.c.street_norm == street, ap.c.city_norm == city)
            rq = rq.where(sr.c.street_norm == street, sr.c.city_norm == city)
        points = [
            _Place(
                r.number,
                r.number_int,
                street,
                r.unit or "",
                r.city_norm or "",
                r.zip or "",
                r.lat,
                r.lon,
                ADDRESS_POINT,
            )
            for r in self.conn.execute(pq.order_by(ap.c.id))
        ]
        sides: list[_Side] = []
        for r in self.conn.execute(rq.order_by(sr.c.id)):
            line = tuple((float(x), float(y)) for x, y in r.geometry)
            for left, start, end, side_zip in (
                (True, r.from_left, r.to_left, r.zip_left),
                (False, r.from_right, r.to_right, r.zip_right),
            ):
                if start is None or end is None:
                    continue
                if zip_code is not None and side_zip != zip_code:
                    continue  # the street is the ZIP boundary: the other side is another ZIP
                sides.append(_Side(street, r.city_norm or "", side_zip or "", start, end, left, line))
        return _Rows(points, sides)

    # -- words -----------------------------------------------------------------------------

    def _suggestion(self, pl: _Place) -> Suggestion:
        return Suggestion(
            street=f"{pl.number} {pl.street}",
            city=pl.city or self.city,
            state=self.gaz.state,
            zip=pl.zip,
            lat=pl.lat,
            lon=pl.lon,
            precision=pl.precision,
        )

    def _one_line(self, pl: _Place) -> str:
        unit = f" {pl.unit}" if pl.unit else ""
        return f"{pl.number} {pl.street}{unit}, {pl.city or self.city}, {self.gaz.state} {pl.zip}".strip()


def _title(city: str) -> str:
    return " ".join(w.capitalize() for w in city.split())
