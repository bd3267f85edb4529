"""`sor-notify gazetteer import`: OpenAddresses points and TIGER/Line ranges into the local gazetteer."""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from streams.adapters.gazetteer_db import address_points, gazetteer_streets, normalize_state, street_ranges
from streams.adapters.gazetteer_files import (
    FORMATS,
    csv_records,
    detect_format,
    geojson_records,
    shapefile_features,
)
from streams.adapters.gazetteer_rows import (
    MISSOURI_BOUNDS,
    Bounds,
    Rejected,
    csv_point,
    geojson_point,
    point_streets,
    range_row,
    range_streets,
)
from streams.adapters.sql import insert as sql_insert

BATCH_ROWS = 5000


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
            rows: Iterable[tuple[int, Any]] = shapefile_features(path, show)
        else:
            rows = geojson_records(path, show)
        writer = _Writer(
            engine,
            street_ranges,
            _RANGE_COMPARE,
            report,
            batch_rows,
            range_streets,
            "the same street range appears earlier in the file",
        )
        for n, feature in rows:
            _feed(report, writer, n, feature, lambda f: range_row(f, bounds, source))
    else:
        points = csv_records(path, show) if fmt == "oa-csv" else geojson_records(path, show)
        to_row = csv_point if fmt == "oa-csv" else geojson_point
        writer = _Writer(
            engine,
            address_points,
            _POINT_COMPARE,
            report,
            batch_rows,
            point_streets,
            "the same address appears earlier in the file",
        )
        for n, record in points:
            _feed(report, writer, n, record, lambda r: to_row(r, bounds, state, source))
    writer.flush()
    report.rejected.sort(key=lambda r: r[0])  # duplicates are caught when their batch is written
    return report


def _feed(
    report: ImportReport, writer: _Writer, n: int, record: Any, to_row: Callable[[Any], dict[str, Any]]
) -> None:
    if isinstance(record, Rejected):
        report.reject(n, str(record))
        return
    try:
        row = to_row(record)
    except Rejected as exc:
        report.reject(n, str(exc))
        return
    writer.add(n, row)


# --- writing, in batches ------------------------------------------------------------------

# The source is not compared: the same address from another file is not news.
_POINT_COMPARE = ("lat", "lon", "number_int", "state")
_RANGE_COMPARE = ("geometry",)


class _Writer:
    """Upserts rows by hash, one transaction per batch, counting new, moved and unchanged rows.

    Every row this run wrote or found unchanged carries the run's id, so a second listing of
    an address is recognised even thousands of rows later: the first listing wins.
    """

    def __init__(
        self,
        engine: Engine,
        table: Any,
        compare: tuple[str, ...],
        report: ImportReport,
        batch_rows: int,
        streets_of: Callable[[dict[str, Any]], Iterable[tuple[str, str, str]]],
        duplicate: str,
    ) -> None:
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
