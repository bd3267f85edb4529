"""Import files under fire: every line or row is imported or rejected with a reason, and the
database then holds exactly what was accepted."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine

from streams.adapters.db import offender_watches, subscribers, tracked_addresses
from streams.adapters.gazetteer import LocalGazetteer
from streams.adapters.gazetteer_db import address_points, gazetteer_streets, street_ranges
from streams.adapters.gazetteer_import import import_gazetteer
from streams.adapters.gazetteer_rows import MISSOURI_BOUNDS
from streams.adapters.maildir import MaildirSender
from streams.adapters.subscriber_import import (
    MAX_LINE_BYTES,
    ImportedSubscriber,
    InvalidLine,
    iter_import_file,
)
from streams.runtime import Runtime
from streams.services.demo import DEMO_GAZETTEER
from streams.services.importing import import_subscribers
from streams.settings import load_settings
from tests.property.hostile import (
    BAD_UTF8,
    NOT_JSON,
    SCRIPT,
    Tally,
    hostile_text,
    property_settings,
    schema_subscriber_lines,
    spoiled_json,
)

_n = itertools.count(1)

# --- subscriber import lines ---------------------------------------------------------------


def good_line(**over: Any) -> dict[str, Any]:
    n = next(_n)
    return {
        "email": f"Parent{n}@Example.org",
        "confirmed": True,
        "offenders": [f"MO-{n:04d}"],
        "addresses": [
            {
                "label": f"Home {SCRIPT}",
                "street": "1 Hitt St",
                "city": "Columbia",
                "state": "MO",
                "zip": "65201",
                "radius": "1mi",
            },  # geocoded from the demo gazetteer
            {
                "label": "Emma's school",
                "street": "300 E High St",
                "city": "Jefferson City",
                "state": "mo",
                "zip": "65101-1234",
                "radius": "500ft",
                "lat": 38.577,
                "lon": -92.169,
            },
        ],
    } | over


@pytest.fixture(scope="module")
def line_pool() -> list[dict[str, Any]]:
    """Lines from subscriber-import.schema.json (hypothesis-jsonschema), each with an e-mail
    address that passes the syntax check (the schema says only "a string")."""
    pool = [
        good_line(),
        good_line(addresses=[], offenders=[]),
        {"email": "a@example.com", "confirmed": False},
    ]

    @property_settings(40)
    @given(schema_subscriber_lines())
    def collect(doc: dict[str, Any]) -> None:
        pool.append(json.loads(json.dumps(doc | {"email": f"pool{len(pool)}@example.net"})))

    collect()
    return pool


# Spoilers after which a line can never be imported (the rest may leave it valid).
LINE_REJECTED = NOT_JSON | {
    "deep_nesting",
    "huge_string",
    "not_an_object",
    "lone_surrogate",
    "nul_character",
    "bad_email",
    "too_many_offenders",
    "too_many_addresses",
    "bad_radius",
    "half_coordinates",
    "coordinates_out_of_range",
    "overlong_line",
    "bom_inside",
    "drop_required",
}
HOSTILE_EMAILS = [
    "plain",
    "@example.org",
    "a@",
    "a@@example.org",
    "a b@example.org",
    f"{SCRIPT}@example.org",
    "a@example.org\n",
    "a@exa_mple.org",
    "a@[127.0.0.1]",
    '"quoted"@example.org',
    "a@" + "b" * 250 + ".org",
    "a@example..org",
    "a@-example.org",
    "a@example.org>",
    "a\u0000@example.org",
    "\u202ea@example.org",
]
# Odd but deliverable: email-validator takes them (a long local part, an internationalized address).
ODD_EMAILS = [
    "a" * 65 + "@example.org",
    "ä@ex\u00e4mple.org",
    "O'Brien+alerts@Example.ORG",
    "x@xn--bcher-kva.example",
]


@st.composite
def hostile_line(draw: st.DrawFn, base: dict[str, Any]) -> tuple[str, bytes]:
    kind = draw(
        st.sampled_from(
            [
                "json",
                "json",
                "json",
                "bad_email",
                "odd_email",
                "too_many_offenders",
                "too_many_addresses",
                "bad_radius",
                "half_coordinates",
                "coordinates_out_of_range",
                "overlong_line",
                "bom_inside",
                "drop_required",
                "blank",
            ]
        )
    )
    doc = json.loads(json.dumps(base))
    if kind == "json":
        return draw(spoiled_json(base))
    if kind == "bad_email":
        return kind, json.dumps(doc | {"email": draw(st.sampled_from(HOSTILE_EMAILS))}).encode()
    if kind == "odd_email":
        return kind, json.dumps(
            doc | {"email": draw(st.sampled_from(ODD_EMAILS))}, ensure_ascii=False
        ).encode()
    if kind == "too_many_offenders":
        ids = [f"X-{i}" for i in range(draw(st.integers(6, 50)))]
        return kind, json.dumps(doc | {"offenders": ids}).encode()
    if kind == "too_many_addresses":
        a = good_line()["addresses"][1]
        return kind, json.dumps(doc | {"addresses": [a] * draw(st.integers(6, 20))}).encode()
    if kind in ("bad_radius", "half_coordinates", "coordinates_out_of_range"):
        a = dict(good_line()["addresses"][1])
        if kind == "bad_radius":
            a["radius"] = draw(st.sampled_from(["1 mile", "10mi", "", "0", "5MI", "<b>1mi</b>"]))
        elif kind == "half_coordinates":
            del a[draw(st.sampled_from(["lat", "lon"]))]
        else:
            which = draw(st.sampled_from(["lat", "lon"]))
            a[which] = draw(
                st.sampled_from([90.5, -90.5, 1e308] if which == "lat" else [180.5, -181.0, -1e10])
            )
        return kind, json.dumps(doc | {"addresses": [a]}).encode()
    if kind == "overlong_line":
        return kind, json.dumps(
            doc | {"padding": "x" * (MAX_LINE_BYTES + draw(st.integers(1, 70_000)))}
        ).encode()
    if kind == "bom_inside":
        return kind, b"\xef\xbb\xbf" + json.dumps(doc).encode()
    if kind == "drop_required":
        gone = draw(st.sampled_from(["email", "confirmed"]))
        return kind, json.dumps({k: v for k, v in doc.items() if k != gone}).encode()
    return kind, draw(st.sampled_from([b"", b"   ", b"\t", b"\r"]))


def reason_key(message: str) -> str:
    """A short name to count a rejection by: the kind of fault, or the field it names."""
    for start, key in (
        ("not valid JSON", "not JSON"),
        ("line is not UTF-8", "not UTF-8"),
        ("line is longer", "line too long"),
        ("a line must be", "not an object"),
        ("line:", "top-level fields"),
    ):
        if message.startswith(start):
            return key
    return message.split(":", 1)[0].split("[", 1)[0].split(".", 1)[0]


def assert_reason(err: InvalidLine, email: Any) -> None:
    message = str(err)
    assert message.strip() and message.isprintable(), message
    if isinstance(email, str) and "@" in email and len(email) >= 6:
        assert email.lower() not in message.lower()


def assert_storable(sub: ImportedSubscriber) -> None:
    """What the database gets: text that UTF-8 (and so SQLite and PostgreSQL) can hold."""
    for a in sub.addresses:
        for value in (a.label, a.street, a.city, a.state, a.zip, a.normalized):
            value.encode("utf-8")
            assert "\x00" not in value
        assert a.lat is None or (math.isfinite(a.lat) and -90 <= a.lat <= 90)
        assert a.lon is None or (math.isfinite(a.lon) and -180 <= a.lon <= 180)
    assert sub.email == sub.email.lower() and "@" in sub.email
    assert len(sub.addresses) <= 5 and len(sub.offenders) <= 5


def test_subscriber_lines_are_imported_or_rejected_with_a_reason(tally, line_pool, tmp_path: Path) -> None:
    """One hostile line between two good ones: the good ones are always read, the hostile one
    is a subscriber or a reason, never an exception."""
    t: Tally = tally("subscriber import lines")
    path = tmp_path / "subscribers.jsonl"

    @property_settings(1_000)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        base = data.draw(st.sampled_from(line_pool), label="base")
        kind, raw = data.draw(hostile_line(base), label="hostile")
        first, last = good_line(), good_line()
        path.write_bytes(json.dumps(first).encode() + b"\n" + raw + b"\n" + json.dumps(last).encode() + b"\n")

        items = list(iter_import_file(path))

        (n1, sub1), (n_last, sub_last) = items[0], items[-1]
        assert (n1, getattr(sub1, "email", sub1)) == (1, first["email"].lower())
        assert (n_last, getattr(sub_last, "email", sub_last)) == (3, last["email"].lower())
        middle = items[1:-1]
        assert len(middle) <= 1
        for _, item in middle:
            if isinstance(item, InvalidLine):
                assert_reason(item, base.get("email"))
                t.reject(reason_key(str(item)), kind)
            else:
                assert kind not in LINE_REJECTED, (kind, raw[:200], item)
                assert_storable(item)
                t.accept(kind)
        if not middle:
            assert kind in ("blank", "truncated") or raw.strip() == b"", (kind, raw)
            t.reject("blank line skipped", kind)

    run()
    assert t.accepted and t.rejected


@pytest.fixture
def import_services(sqlite_engine: Engine, tmp_path: Path) -> Runtime:
    import_gazetteer(sqlite_engine, DEMO_GAZETTEER, progress=False)
    return Runtime(
        settings=load_settings({"SOR_DATA_DIR": str(tmp_path)}),
        engine=sqlite_engine,
        mail=MaildirSender(tmp_path / "maildir"),
        geocoder=LocalGazetteer(sqlite_engine),
    )


def _stored(engine: Engine) -> dict[str, tuple[list[tuple[str, str, str]], set[str]]]:
    """email -> (its tracked addresses as (label, street, radius), its watched offender ids)."""
    with engine.connect() as conn:
        subs = dict(conn.execute(select(subscribers.c.id, subscribers.c.email)).all())
        out = {email: ([], set()) for email in subs.values()}
        for row in conn.execute(select(tracked_addresses).order_by(tracked_addresses.c.id)):
            out[subs[row.subscriber_id]][0].append((row.label, row.street, row.radius_code))
        for sid, oid in conn.execute(
            select(offender_watches.c.subscriber_id, offender_watches.c.offender_id)
        ):
            out[subs[sid]][1].add(oid)
    return out


def test_a_hostile_import_file_stores_exactly_its_accepted_lines(
    tally, line_pool, import_services, tmp_path
) -> None:
    """Good and hostile lines mixed, some for the same e-mail address, through `subscribers
    import` (geocoding included) into SQLite: each line is counted once, as imported or as
    rejected with a reason, and the database holds what the last imported line of each
    address said; nothing of a rejected line."""
    t: Tally = tally("subscriber import files")
    engine = import_services.engine
    path = tmp_path / "mixed.jsonl"
    emails = [f"same{i}@example.org" for i in range(3)]

    line = st.one_of(
        st.builds(lambda: good_line()),
        st.sampled_from(emails).map(lambda e: good_line(email=e.upper())),
        st.sampled_from(emails).map(lambda e: good_line(email=e, addresses=[], offenders=["A", "B", "A"])),
        st.sampled_from(emails).map(
            lambda e: good_line(email=e, addresses=[good_line()["addresses"][0] | {"street": "9999 Hitt St"}])
        ),  # a house the street does not have: refused by the geocoder
    )

    @property_settings(150)
    @given(st.lists(st.tuples(line, st.booleans()), min_size=1, max_size=8), st.data())
    def run(lines: list[tuple[dict[str, Any], bool]], data: st.DataObject) -> None:
        with engine.begin() as conn:
            for table in (offender_watches, tracked_addresses, subscribers):
                conn.execute(delete(table))
        raws: list[bytes] = []
        for doc, spoil in lines:
            raws.append(data.draw(hostile_line(doc))[1] if spoil else json.dumps(doc).encode())
        raws = [r for r in raws if r.strip()]  # a blank line is skipped, not counted
        path.write_bytes(b"\n".join(raws) + b"\n")

        report = asyncio.run(import_subscribers(import_services, path, broker_url=None))

        rejected = dict(report.rejected)
        assert report.imported + len(rejected) == len(raws)
        assert all(reason.strip() for reason in rejected.values())
        parsed = dict(iter_import_file(path))
        expected: dict[str, tuple[list[tuple[str, str, str]], set[str]]] = {}
        for n, item in parsed.items():
            if n in rejected:
                if isinstance(item, ImportedSubscriber):  # read fine, refused by the geocoder
                    assert rejected[n].startswith("addresses[") and "9999" in raws[n - 1].decode()
                t.reject(reason_key(rejected[n]))
                continue
            assert isinstance(item, ImportedSubscriber)
            expected[item.email] = (
                [(a.label, a.street, a.radius_code) for a in item.addresses],
                set(item.offenders),
            )
            t.accept()
        assert _stored(engine) == expected

    run()
    assert t.accepted and t.rejected


# --- gazetteer rows ------------------------------------------------------------------------

OA_HEADER = ["LON", "LAT", "NUMBER", "STREET", "UNIT", "CITY", "DISTRICT", "REGION", "POSTCODE"]


def good_point(base: int = 100_000) -> dict[str, Any]:
    """A Columbia house; the good rows around hostile ones number from 500,000 up."""
    n = base + next(_n)
    return {
        "LON": -92.3252,
        "LAT": 38.9467,
        "NUMBER": str(n),
        "STREET": "Property Test Rd",
        "UNIT": "",
        "CITY": "Columbia",
        "DISTRICT": "",
        "REGION": "MO",
        "POSTCODE": "65201",
    }


def good_range(base: int = 100_000) -> dict[str, Any]:
    n = base + 2 * next(_n)
    return {
        "FULLNAME": "Property Test Ave",
        "LFROMHN": str(n),
        "LTOHN": str(n + 98),
        "RFROMHN": str(n + 1),
        "RTOHN": str(n + 99),
        "ZIPL": "65101",
        "ZIPR": "65101",
        "TLID": str(n),
        "PLACE": "Jefferson City",
    }


def feature(props: dict[str, Any], tiger: bool) -> dict[str, Any]:
    if tiger:
        geometry = {"type": "LineString", "coordinates": [[-92.2, 38.58], [-92.19, 38.58]]}
    else:
        props = dict(props)
        geometry = {"type": "Point", "coordinates": [props.pop("LON"), props.pop("LAT")]}
    return {"type": "Feature", "properties": props, "geometry": geometry}


GEOMETRY_SPOILERS = [
    None,
    [],
    "POINT(1 2)",
    5,
    {"type": "Point"},
    {"type": "Point", "coordinates": "-92,38"},
    {"type": "Point", "coordinates": [{"x": 1}, 2]},
    {"type": "Point", "coordinates": [[-92, 38]]},
    {"type": "LineString", "coordinates": 7},
    {"type": "LineString", "coordinates": [7, 8]},
    {"type": "LineString", "coordinates": [{"a": 1}, {"b": 2}]},
    {"type": "LineString", "coordinates": [[-92.2]]},
    {"type": "MultiLineString", "coordinates": [[[-92.2, 38.58], [-92.19, 38.58]], 3]},
    {"type": "LineString", "coordinates": [["-92.2", "38.58"], ["x", "y"]]},
]
RAW_GEOMETRY = [
    "[NaN, 38.9]",
    "[-92.3, Infinity]",
    '{"type": "LineString", "coordinates": [[-92.2, 38.58], [NaN, 38.58]]}',
    '{"type": "LineString", "coordinates": [[-92.2, 38.58], [Infinity, -Infinity]]}',
    '{"type": "LineString", "coordinates": [[-92.2, 38.58], [1e999, 38.58]]}',
]
NUMBERS = [
    "²",
    "١٢٣",
    "𝟏𝟐",
    "1" * 5000,
    "9" * 40,
    "-1",
    "1.5",
    "1e3",
    "0",
    "0x10",
    " 12 ",
    "12\x00",
    "½",
    "1510 1/2",
    "1510-A",
    "\u00b9\u00b2\u00b3",
]


@st.composite
def hostile_feature(draw: st.DrawFn, tiger: bool) -> tuple[str, bytes]:
    props = good_range() if tiger else good_point()
    f = feature(props, tiger)
    choice = draw(st.sampled_from(["json", "json", "geometry", "raw_geometry", "number", "properties"]))
    if choice == "json":
        return draw(spoiled_json(f))
    if choice == "geometry":
        return choice, json.dumps(f | {"geometry": draw(st.sampled_from(GEOMETRY_SPOILERS))}).encode()
    if choice == "raw_geometry":
        text = json.dumps(f | {"geometry": "@@GEOM@@"})
        token = draw(st.sampled_from(RAW_GEOMETRY))
        if not tiger and token.startswith("["):
            token = '{"type": "Point", "coordinates": ' + token + "}"
        return choice, text.replace('"@@GEOM@@"', token).encode()
    if choice == "number":
        fields = ["LFROMHN", "LTOHN", "RFROMHN", "RTOHN"] if tiger else ["NUMBER"]
        f["properties"][draw(st.sampled_from(fields))] = draw(st.sampled_from(NUMBERS) | hostile_text)
        return choice, json.dumps(f).encode()
    return choice, json.dumps(
        f | {"properties": draw(st.sampled_from([None, [], "x", 1, [["NUMBER", "1"]]]))}
    ).encode()


@st.composite
def hostile_csv_row(draw: st.DrawFn) -> tuple[str, bytes]:
    row = good_point()
    choice = draw(st.sampled_from(["cells", "cells", "number", "raw", "columns", "huge"]))
    if choice == "cells":
        for name in draw(st.lists(st.sampled_from(OA_HEADER), min_size=1, max_size=4)):
            row[name] = draw(hostile_text | st.sampled_from(["NaN", "inf", "-inf", "1e999", "", " ", "38,9"]))
    elif choice == "number":
        row["NUMBER"] = draw(st.sampled_from(NUMBERS))
    elif choice == "huge":
        row[draw(st.sampled_from(OA_HEADER))] = "x" * draw(st.sampled_from([300, 140_000]))
    if choice in ("cells", "number", "huge"):
        out = io.StringIO()
        csv.writer(out).writerow([row[h] for h in OA_HEADER])
        return choice, out.getvalue().rstrip("\r\n").encode("utf-8", "surrogatepass")
    if choice == "columns":
        cells = [str(row[h]) for h in OA_HEADER]
        n = draw(st.integers(0, 14))
        return choice, ",".join((cells + ["extra"] * 6)[:n]).encode()
    raw = draw(
        st.sampled_from(
            [
                b'-92.3,38.9,"unterminated,Main St',
                b'"',
                b"\x00\x00\x00",
                b",,,,,,,,",
                b"-92.3;38.9;1;Main",
                b"\r",
                b"-92.3,38.9,1,Main\rSt,,Columbia,,MO,65201",
            ]
        )
    )
    return choice, raw + draw(st.sampled_from(BAD_UTF8 + [b""]))


def _gazetteer_sane(engine: Engine) -> tuple[int, int]:
    """Counts of points and ranges, after checking every stored row could have been imported."""
    lo_lon, lo_lat, hi_lon, hi_lat = MISSOURI_BOUNDS
    with engine.connect() as conn:
        for p in conn.execute(select(address_points)):
            assert lo_lon <= p.lon <= hi_lon and lo_lat <= p.lat <= hi_lat
            assert p.number.isprintable() and len(p.number) <= 32 and 0 <= p.number_int <= 999_999
            assert p.street_norm and len(p.street_norm) <= 200 and len(p.unit) <= 64
            assert p.state == "MO" and (p.zip is None or (len(p.zip) == 5 and p.zip.isdigit()))
        for r in conn.execute(select(street_ranges)):
            assert len(r.geometry) >= 2 and all(math.isfinite(c) for pt in r.geometry for c in pt)
            assert r.street_norm and len(r.street_norm) <= 200
        return (
            conn.execute(select(func.count()).select_from(address_points)).scalar_one(),
            conn.execute(select(func.count()).select_from(street_ranges)).scalar_one(),
        )


@pytest.mark.parametrize("fmt", ["oa-csv", "oa-geojson", "tiger", "collection"])
def test_gazetteer_rows_are_loaded_or_rejected_with_a_reason(
    fmt: str, tally, sqlite_engine, tmp_path
) -> None:
    """Hostile rows between good ones in each import format: every row is loaded or rejected
    with a reason, the good rows always load, and what is stored is a usable address. In a
    FeatureCollection (read as one JSON document) a feature that is not JSON spoils the file:
    it is refused whole, with a reason, and nothing is stored."""
    t: Tally = tally(f"gazetteer rows ({fmt})")
    tiger = fmt == "tiger"
    collection = fmt == "collection"
    path = tmp_path / ("rows.csv" if fmt == "oa-csv" else "rows.geojson")

    def good_bytes() -> bytes:
        if fmt == "oa-csv":
            return ",".join(str(v) for v in good_point(500_000).values()).encode()
        return json.dumps(feature(good_range(500_000) if tiger else good_point(500_000), tiger)).encode()

    hostile = hostile_csv_row() if fmt == "oa-csv" else hostile_feature(tiger)

    @property_settings(400)
    @given(st.lists(hostile, min_size=1, max_size=5))
    def run(rows: list[tuple[str, bytes]]) -> None:
        with sqlite_engine.begin() as conn:  # each example on its own: what it stores is its doing
            for table in (address_points, street_ranges, gazetteer_streets):
                conn.execute(delete(table))
        lines = [good_bytes(), *(raw for _, raw in rows), good_bytes()]
        if collection:
            path.write_bytes(
                b'{"type": "FeatureCollection", "features": [\n' + b",\n".join(lines) + b"\n]}\n"
            )
            try:
                report = import_gazetteer(sqlite_engine, path, "oa-geojson", progress=False)
            except ValueError as exc:
                assert str(exc).strip() and _gazetteer_sane(sqlite_engine) == (0, 0)
                t.reject(f"whole file: {str(exc).split(':')[0]}")
                return
        else:
            head = [",".join(OA_HEADER).encode()] if fmt == "oa-csv" else []
            path.write_bytes(b"\n".join(head + lines) + b"\n")
            report = import_gazetteer(sqlite_engine, path, fmt, progress=False)

        stored = _gazetteer_sane(sqlite_engine)
        assert stored == ((0, report.inserted) if tiger else (report.inserted, 0))
        assert report.updated == report.unchanged == 0
        assert all(reason.strip() for _, reason in report.rejected)
        first = 2 if fmt == "oa-csv" else 1
        assert first not in {n for n, _ in report.rejected}  # the good row before the hostile ones
        if fmt != "oa-csv" and not collection:  # one feature a line: none can swallow the next
            last = len(lines)
            assert last not in {n for n, _ in report.rejected} and report.inserted >= 2, (report, lines)
        elif collection:  # features, not lines: a hostile one may hold several, but the good ones load
            assert report.inserted >= 2, (report, lines)
        for _, reason in report.rejected:
            t.reject(reason)
        for _ in range(report.accepted):
            t.accept()

    run()
    assert t.accepted and t.rejected
