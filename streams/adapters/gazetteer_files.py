"""Gazetteer files read as a stream of (row number, record): OpenAddresses CSV and GeoJSON,
TIGER shapefiles, and which format a file is."""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from tqdm import tqdm

from streams.adapters.gazetteer_rows import Rejected

FORMATS = ("oa-csv", "oa-geojson", "tiger")

_CHUNK = 1 << 16


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
        raw = io.BufferedReader(_CountingReader(raw, bar), _CHUNK)
    if path.suffix.lower() == ".gz":
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _bar(path: Path, show: bool) -> tqdm:
    return tqdm(
        total=path.stat().st_size,
        unit="B",
        unit_scale=True,
        desc=path.name,
        file=sys.stderr,
        disable=not show,
    )


def csv_records(path: Path, show: bool) -> Iterator[tuple[int, Any]]:
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


def geojson_records(path: Path, show: bool) -> Iterator[tuple[int, Any]]:
    with _bar(path, show) as bar, _open_text(path, bar) as f:
        yield from _geojson_features(f)


def _geojson_features(f: TextIO) -> Iterator[tuple[int, Any]]:
    """Features of a FeatureCollection (streamed) or of newline-delimited GeoJSON."""
    buf = f.read(_CHUNK)
    start = len(buf) - len(buf.lstrip())
    if buf[start : start + 1] == "{":
        line_end = buf.find("\n", start)
        first = buf[start : line_end if line_end >= 0 else len(buf)]
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
        self.buf = self.buf[self.pos :] + chunk
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


def shapefile_features(path: Path, show: bool) -> Iterator[tuple[int, Any]]:
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
                lines = [
                    [list(map(float, p[:2])) for p in shape.points[a:b]] for a, b in zip(parts, parts[1:])
                ]
                if transform is not None:
                    lines = [[list(transform(x, y)) for x, y in line] for line in lines]
                props = dict(zip(names, sr.record))
                yield (
                    n,
                    {
                        "type": "Feature",
                        "properties": props,
                        "geometry": {"type": "MultiLineString", "coordinates": lines},
                    },
                )


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
