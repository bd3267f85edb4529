"""`sor-notify gazetteer import`: OpenAddresses points and TIGER/Line ranges into the local gazetteer."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, TextIO

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from tqdm import tqdm

from streams.adapters.gazetteer_db import (
    address_points,
    gazetteer_streets,
    normalize_city,
    normalize_number,
    normalize_state,
    normalize_street,
    number_int,
    plain,
    row_hash,
    street_ranges,
    zip5,
)
from streams.adapters.sql import insert as sql_insert

FORMATS = ("oa-csv", "oa-geojson", "tiger")
# Missouri with a few kilometres to spare: (min_lon, min_lat, max_lon, max_lat).
MISSOURI_BOUNDS: tuple[float, float, float, float] = (-95.8, 35.9, -89.0, 40.7)
BATCH_ROWS = 5000
MAX_HOUSE_NUMBER = 999_999
_CHUNK = 1 << 16

Bounds = tuple[float, float, float, float]


class Rejected(Exception):
    """One row that cannot be imported; the message is its reason, the same for every such row."""


@dataclass
class ImportReport:
    fmt: str = ""
    inserted: int = 0
    updated: int = 0  # existed already and moved (or changed otherwise)
    unchanged: int = 0  # existed already exactly so: a re-import
    # (row number, reason). Row numbers are the line in the file (a CSV header is line 1)
    # or, for a FeatureCollection or a shapefile, the feature's 1-based position.
    rejected: list[tuple[int, str]] = field(default_factory=list)
    by_reason: Counter[str] = field(default_factory=Counter)

    def reject(self, row: int, reason: str) -> None:
        self.rejected.append((row, reason))
        self.by_reason[reason] += 1

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged


def import_gazetteer(
    engine: Engine,
    path: str | PathLike[str],
    fmt: str | None = None,
    *,
    bounds: Bounds = MISSOURI_BOUNDS,
    default_state: str = "MO",
    progress: bool = True,
    batch_rows: int = BATCH_ROWS,
) -> ImportReport:
    """Stream one file into the gazetteer; importing the same file again changes nothing."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown gazetteer format {fmt!r}; expected one of {', '.join(FORMATS)}")
    report = ImportReport(fmt=fmt)
    source = path.name[:200]
    state = normalize_state(default_state)
    show = progress and sys.stderr.isatty()
    if fmt == "tiger":
        if path.suffix.lower() in (".shp", ".zip"):
            rows: Iterable[tuple[int, Any]] = _shapefile_features(path, show)
        else:
            rows = _progress_geojson(path, show)
        writer = _Writer(engine, street_ranges, _RANGE_COMPARE, report, batch_rows, _range_streets,
                         "the same street range appears earlier in the file")
        for n, feature in rows:
            _feed(report, writer, n, feature, lambda f: _range_row(f, bounds, source))
    else:
        points = _progress_csv(path, show) if fmt == "oa-csv" else _progress_geojson(path, show)
        to_row = _csv_point if fmt == "oa-csv" else _geojson_point
        writer = _Writer(engine, address_points, _POINT_COMPARE, report, batch_rows, _point_streets,
                         "the same address appears earlier in the file")
        for n, record in points:
            _feed(report, writer, n, record, lambda r: to_row(r, bounds, state, source))
    writer.flush()
    report.rejected.sort(key=lambda r: r[0])  # duplicates are caught when their batch is written
    return report


def _feed(report: ImportReport, writer: _Writer, n: int, record: Any,
          to_row: Callable[[Any], dict[str, Any]]) -> None:
    if isinstance(record, Rejected):
        report.reject(n, str(record))
        return
    try:
        row = to_row(record)
    except Rejected as exc:
        report.reject(n, str(exc))
        return
    writer.add(n, row)


# --- format detection ---------------------------------------------------------------------


def detect_format(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in (".shp", ".zip"):
        return "tiger"
    if last in (".csv", ".tsv"):
        return "oa-csv"
    with _open_text(path) as f:
        head = f.read(_CHUNK).lstrip()
    if not head.startswith(("{", "[")):
        first = head.splitlines()[0].upper() if head else ""
        if "LON" in first and "LAT" in first:
            return "oa-csv"
        raise ValueError(f"{path.name}: cannot tell the format; pass fmt= one of {', '.join(FORMATS)}")
    feature = next((f for _, f in _geojson_features(io.StringIO(head)) if isinstance(f, dict)), None)
    props = {k.upper() for k in ((feature or {}).get("properties") or {})}
    if props & {"FULLNAME", "LFROMHN", "RFROMHN"}:
        return "tiger"
    if props & {"NUMBER", "STREET"}:
        return "oa-geojson"
    raise ValueError(f"{path.name}: neither OpenAddresses nor TIGER properties; pass fmt=")


# --- reading, streamed --------------------------------------------------------------------


class _CountingReader(io.RawIOBase):
    """Counts bytes as they are read, for a progress bar over a file read as text."""

    def __init__(self, raw: BinaryIO, bar: tqdm) -> None:
        self._raw, self._bar = raw, bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._bar.update(len(data))
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_text(path: Path, bar: tqdm | None = None) -> TextIO:
    raw: BinaryIO = open(path, "rb")
    if bar is not None:
        raw = io.BufferedReader(_CountingReader(raw, bar), _CHUNK)  # type: ignore[assignment]
    if path.suffix.lower() == ".gz":
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _bar(path: Path, show: bool) -> tqdm:
    return tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name,
                file=sys.stderr, disable=not show)


def _progress_csv(path: Path, show: bool) -> Iterator[tuple[int, Any]]:
    with _bar(path, show) as bar, _open_text(path, bar) as f:
        reader = csv.reader(f, delimiter="\t" if ".tsv" in path.name.lower() else ",")
        header = [h.strip().upper() for h in next(reader, [])]
        missing = {"LON", "LAT", "NUMBER", "STREET"} - set(header)
        if missing:
            raise ValueError(f"{path.name}: not an OpenAddresses CSV, no {', '.join(sorted(missing))} column")
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a field over csv's limit: that row only, read on
                yield reader.line_num, Rejected(f"not a readable CSV row ({exc})")
                continue
            if not any(c.strip() for c in cells):
                continue
            yield reader.line_num, dict(zip(header, cells))


def _progress_geojson(path: Path, show: bool) -> Iterator[tuple[int, Any]]:
    with _bar(path, show) as bar, _open_text(path, bar) as f:
        yield from _geojson_features(f)


def _geojson_features(f: TextIO) -> Iterator[tuple[int, Any]]:
    """Features of a FeatureCollection (streamed) or of newline-delimited GeoJSON."""
    buf = f.read(_CHUNK)
    start = len(buf) - len(buf.lstrip())
    if buf[start:start + 1] == "{":
        line_end = buf.find("\n", start)
        first = buf[start:line_end if line_end >= 0 else len(buf)]
        try:
            obj = json.loads(first)
        except ValueError:
            obj = None
        if not (isinstance(obj, dict) and obj.get("type") == "Feature"):
            yield from _collection_features(_Tokens(f, buf))
            return
    yield from _lines_features(buf, f)


def _lines_features(buf: str, f: TextIO) -> Iterator[tuple[int, Any]]:
    n = 0
    rest = buf
    while True:
        lines = rest.split("\n")
        rest = lines.pop()
        chunk = f.read(_CHUNK)
        if not chunk:
            lines.append(rest)
        for line in lines:
            n += 1
            line = line.strip().rstrip(",")  # a few tools write "Feature," lines
            if not line or line in ("[", "]"):
                continue
            try:
                yield n, json.loads(line)
            except (ValueError, RecursionError):  # RecursionError: nested thousands deep
                yield n, Rejected("line is not valid JSON")
        if not chunk:
            return
        rest += chunk


class _Tokens:
    """Just enough of a JSON reader to walk a FeatureCollection one feature at a time."""

    def __init__(self, f: TextIO, buf: str) -> None:
        self.f, self.buf, self.pos, self.eof = f, buf, 0, False
        self.decoder = json.JSONDecoder()

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"not a GeoJSON FeatureCollection: expected {char!r} near character {self.pos}")
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except ValueError:
                if self._more():
                    continue
                raise ValueError("not a GeoJSON FeatureCollection: truncated or invalid JSON") from None
            except RecursionError:
                raise ValueError("not a GeoJSON FeatureCollection: a feature is nested too deeply") from None
            # A number at the end of the buffer may go on in the next chunk.
            if end == len(self.buf) and not isinstance(obj, (dict, list, str)) and self._more():
                continue
            self.pos = end
            return obj


def _collection_features(t: _Tokens) -> Iterator[tuple[int, Any]]:
    t.expect("{")
    n = 0
    while t.peek() != "}":
        key = t.value()
        t.expect(":")
        if key == "features":
            t.expect("[")
            while t.peek() != "]":
                n += 1
                yield n, t.value()
                if t.peek() == ",":
                    t.expect(",")
            t.expect("]")
        else:
            t.value()  # "type", "name", "crs", "bbox": small, skipped
        if t.peek() == ",":
            t.expect(",")
    t.expect("}")


def _shapefile_features(path: Path, show: bool) -> Iterator[tuple[int, Any]]:
    import shapefile  # pyshp

    transform = _prj_transform(path)
    with shapefile.Reader(str(path), encodingErrors="replace") as reader:
        names = [f[0] for f in reader.fields[1:]]
        with tqdm(total=len(reader), unit="rec", desc=path.name, file=sys.stderr, disable=not show) as bar:
            for n, sr in enumerate(reader.iterShapeRecords(), start=1):
                bar.update(1)
                shape = sr.shape
                if shape.shapeType not in (shapefile.POLYLINE, shapefile.POLYLINEZ, shapefile.POLYLINEM):
                    yield n, Rejected("geometry is not a line")
                    continue
                parts = list(shape.parts) + [len(shape.points)]
                lines = [[list(map(float, p[:2])) for p in shape.points[a:b]] for a, b in zip(parts, parts[1:])]
                if transform is not None:
                    lines = [[list(transform(x, y)) for x, y in line] for line in lines]
                props = dict(zip(names, sr.record))
                yield n, {"type": "Feature", "properties": props,
                          "geometry": {"type": "MultiLineString", "coordinates": lines}}


def _prj_transform(path: Path) -> Callable[[float, float], tuple[float, float]] | None:
    """TIGER ships NAD83 lon/lat (within a metre of WGS84); a projected .prj is reprojected."""
    prj = path.with_suffix(".prj")
    if not prj.exists():
        return None
    from pyproj import CRS, Transformer

    crs = CRS.from_wkt(prj.read_text(errors="replace"))
    if crs.is_geographic:
        return None
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform


# --- rows ---------------------------------------------------------------------------------


def _float(value: Any, name: str) -> float:
    if value is None or str(value).strip() == "":
        raise Rejected(f"{name} is missing")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise Rejected(f"{name} is not a number") from None
    if not math.isfinite(v):
        raise Rejected(f"{name} is not a number")
    return v


def _inside(lon: float, lat: float, bounds: Bounds) -> bool:
    return bounds[0] <= lon <= bounds[2] and bounds[1] <= lat <= bounds[3]


def _point_row(props: dict[str, Any], lon: float, lat: float, bounds: Bounds, default_state: str,
               source: str) -> dict[str, Any]:
    number = normalize_number(props.get("NUMBER"))
    if not number:
        raise Rejected("no house number")
    if len(number) > 32:  # before int(): Python refuses to read more than 4300 digits
        raise Rejected("house number is too long")
    if not number.isprintable():  # NUL, controls, lone surrogates: PostgreSQL would fail the batch
        raise Rejected("house number holds a character that is not text")
    n = number_int(number)
    if n is None:
        raise Rejected("house number does not start with a digit")
    if n > MAX_HOUSE_NUMBER:
        raise Rejected("house number is too long")
    street = _street(props.get("STREET"), "no street name")
    state = normalize_state(str(props.get("REGION") or "")) or default_state
    if state != default_state:
        raise Rejected(f"REGION is not {default_state}")
    city = _city(props.get("CITY"))
    zip_code = zip5(props.get("POSTCODE")) or None
    if city is None and zip_code is None:
        raise Rejected("no city and no ZIP code")
    if not _inside(lon, lat, bounds):
        raise Rejected("coordinates are outside the service area")
    unit = plain(str(props.get("UNIT") or ""))
    if len(unit) > 64:
        raise Rejected("unit is too long")
    return {
        "number": number, "number_int": n, "street_norm": street, "unit": unit,
        "city_norm": city, "state": state, "zip": zip_code, "lat": lat, "lon": lon,
        "source": source, "hash": row_hash(number, street, unit, city, zip_code),
    }


def _csv_point(record: dict[str, str], bounds: Bounds, default_state: str, source: str) -> dict[str, Any]:
    lon, lat = _float(record.get("LON"), "LON"), _float(record.get("LAT"), "LAT")
    return _point_row(record, lon, lat, bounds, default_state, source)


def _upper_props(feature: Any) -> dict[str, Any]:
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        raise Rejected("not a GeoJSON Feature")
    props = feature.get("properties") or {}
    if not isinstance(props, dict):
        raise Rejected("properties is not an object")
    return {str(k).upper(): v for k, v in props.items()}


def _geojson_point(feature: Any, bounds: Bounds, default_state: str, source: str) -> dict[str, Any]:
    props = _upper_props(feature)
    geom = feature.get("geometry") or {}
    coords = geom.get("coordinates") if isinstance(geom, dict) and geom.get("type") == "Point" else None
    if not isinstance(coords, list) or len(coords) < 2:
        raise Rejected("geometry is not a point")
    lon, lat = _float(coords[0], "longitude"), _float(coords[1], "latitude")
    return _point_row(props, lon, lat, bounds, default_state, source)


def _house_number(value: Any) -> int | None:
    text = str(value if value is not None else "").strip()
    if not text:
        return None
    if text.endswith(".0"):  # a shapefile numeric field read as float
        text = text[:-2]
    if not text.isdecimal():  # not isdigit(): int() refuses "²", which isdigit() takes
        return None
    if len(text) > 32 or int(text) > MAX_HOUSE_NUMBER:
        raise Rejected("house number is too long")
    return int(text)


# Lengths of the columns: one overlong value must not fail a whole batch on PostgreSQL.
def _street(value: Any, missing: str) -> str:
    street = normalize_street(str(value or ""))
    if not street:
        raise Rejected(missing)
    if len(street) > 200:
        raise Rejected("street name is too long")
    return street


def _city(value: Any) -> str | None:
    city = normalize_city(str(value or "")) or None
    if city is not None and len(city) > 100:
        raise Rejected("city name is too long")
    return city


def _line_coords(geom: Any) -> list[list[float]]:
    if not isinstance(geom, dict):
        raise Rejected("geometry is not a line")
    kind = geom.get("type")
    coords = geom.get("coordinates")
    if kind == "LineString":
        parts = [coords]
    elif kind == "MultiLineString":
        parts = coords
    else:
        raise Rejected("geometry is not a line")
    line: list[list[float]] = []
    try:
        for part in parts or []:
            for p in part or []:
                pt = [float(p[0]), float(p[1])]
                if not all(map(math.isfinite, pt)):
                    raise ValueError(pt)
                if not line or line[-1] != pt:  # parts of one edge join end to start
                    line.append(pt)
    except (TypeError, ValueError, IndexError, KeyError):  # a number, a string, an object...
        raise Rejected("geometry has a coordinate that is not a number") from None
    if len(line) < 2:
        raise Rejected("geometry has fewer than two points")
    return line


def _range_row(feature: Any, bounds: Bounds, source: str) -> dict[str, Any]:
    props = _upper_props(feature)
    street = _street(props.get("FULLNAME"), "no street name (FULLNAME)")
    fl, tl = _house_number(props.get("LFROMHN")), _house_number(props.get("LTOHN"))
    fr, tr = _house_number(props.get("RFROMHN")), _house_number(props.get("RTOHN"))
    if fl is None or tl is None:
        fl = tl = None
    if fr is None or tr is None:
        fr = tr = None
    zl = zip5(props.get("ZIPL")) or None if fl is not None else None
    zr = zip5(props.get("ZIPR")) or None if fr is not None else None
    if fl is None and fr is None:
        raise Rejected("no house-number range on either side")
    city = _city(props.get("PLACE") or props.get("CITY"))
    if zl is None and zr is None and city is None:
        raise Rejected("no ZIP code and no place")
    line = _line_coords(feature.get("geometry"))
    if not any(_inside(lon, lat, bounds) for lon, lat in line):
        raise Rejected("line lies outside the service area")
    tlid = str(props.get("TLID") or "").removesuffix(".0")
    if not tlid.isprintable():  # it goes into the row's hash, which needs UTF-8 text
        raise Rejected("TLID holds a character that is not text")
    return {
        "street_norm": street, "city_norm": city, "zip_left": zl, "zip_right": zr,
        "from_left": fl, "to_left": tl, "from_right": fr, "to_right": tr,
        "geometry": line, "source": source,
        # Not the geometry: a re-import with a redrawn edge updates it in place.
        "hash": row_hash(tlid, street, city, zl, zr, fl, tl, fr, tr),
    }


def _point_streets(row: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    yield row["street_norm"], row["city_norm"] or "", row["zip"] or ""


def _range_streets(row: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    for side_zip, side_from in ((row["zip_left"], row["from_left"]), (row["zip_right"], row["from_right"])):
        if side_from is not None:
            yield row["street_norm"], row["city_norm"] or "", side_zip or ""


# --- writing, in batches ------------------------------------------------------------------

# The source is not compared: the same address from another file is not news.
_POINT_COMPARE = ("lat", "lon", "number_int", "state")
_RANGE_COMPARE = ("geometry",)


class _Writer:
    """Upserts rows by hash, one transaction per batch, counting new, moved and unchanged rows.

    Every row this run wrote or found unchanged carries the run's id, so a second listing of
    an address is recognised even thousands of rows later: the first listing wins.
    """

    def __init__(self, engine: Engine, table: Any, compare: tuple[str, ...], report: ImportReport,
                 batch_rows: int, streets_of: Callable[[dict[str, Any]], Iterable[tuple[str, str, str]]],
                 duplicate: str) -> None:
        self.engine, self.table, self.compare, self.report = engine, table, compare, report
        self.batch_rows, self.streets_of, self.duplicate = batch_rows, streets_of, duplicate
        self.run = uuid.uuid4().hex
        self.batch: dict[str, tuple[int, dict[str, Any]]] = {}
        self.columns = [c.name for c in table.columns if c.name not in ("id", "hash")]

    def add(self, n: int, row: dict[str, Any]) -> None:
        if row["hash"] in self.batch:
            self.report.reject(n, self.duplicate)
            return
        row["import_run"] = self.run
        self.batch[row["hash"]] = (n, row)
        if len(self.batch) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch = self.batch, {}
        t = self.table
        cols = [t.c.hash, t.c.import_run, *(t.c[c] for c in self.compare)]
        with self.engine.begin() as conn:
            existing = {r.hash: r for r in conn.execute(select(*cols).where(t.c.hash.in_(list(batch))))}
            write, touch, kept = [], [], []
            for h, (n, row) in batch.items():
                old = existing.get(h)
                if old is None:
                    self.report.inserted += 1
                    write.append(row)
                elif old.import_run == self.run:
                    self.report.reject(n, self.duplicate)
                    continue
                elif any(getattr(old, c) != row[c] for c in self.compare):
                    self.report.updated += 1
                    write.append(row)
                else:
                    self.report.unchanged += 1
                    touch.append(h)
                kept.append(row)
            if write:
                # PostgreSQL refuses to upsert one key twice in a statement: keys are unique here.
                stmt = sql_insert(conn, t)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[t.c.hash],
                    set_={c: stmt.excluded[c] for c in self.columns},
                )
                conn.execute(stmt, write)
            if touch:
                conn.execute(update(t).where(t.c.hash.in_(touch)).values(import_run=self.run))
            streets = sorted({s for row in kept for s in self.streets_of(row)})
            if streets:
                ins = sql_insert(conn, gazetteer_streets).on_conflict_do_nothing(
                    index_elements=["street_norm", "city_norm", "zip"]
                )
                conn.execute(ins, [{"street_norm": s, "city_norm": c, "zip": z} for s, c, z in streets])
