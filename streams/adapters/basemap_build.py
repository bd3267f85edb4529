"""Turns the vendored us-atlas TopoJSON into the base layer's GeoJSON files, once.

    python -m streams.adapters.basemap_build

writes, beside the vendored file in streams/web/static/basemap/:
- states.json: every state's outline (properties: id = state FIPS, name, label);
- counties-SS.json for each state SS: its counties (id = county FIPS, name, state, label);
- index.json: each state's FIPS, name and bounding box, so a map loads only the states it shows.
Coordinates are longitude, latitude (WGS84 as the Census publishes them), rounded to 4 decimals
(about 10 m; the source is drawn at 1:10,000,000, so nothing real is lost).
`label` is where a map writes the region's name: [longitude, latitude] of the pole of
inaccessibility of its largest part, a point well inside it however the outline bends
(a centroid can fall outside a crescent-shaped county or in a bay).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from shapely.geometry import Polygon
from shapely.ops import polylabel

BASEMAP_DIR = Path(__file__).resolve().parents[1] / "web" / "static" / "basemap"
SOURCE = BASEMAP_DIR / "us-atlas" / "counties-10m.json"

Point = tuple[float, float]
Ring = list[Point]


def _decode_arcs(topology: dict[str, Any]) -> list[list[Point]]:
    """TopoJSON arcs are quantized and delta-encoded: back to longitude, latitude."""
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs: list[list[Point]] = []
    for arc in topology["arcs"]:
        x = y = 0
        points: list[Point] = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((round(x * sx + tx, 4), round(y * sy + ty, 4)))
        arcs.append(points)
    return arcs


def _ring(arcs: list[list[Point]], indexes: Iterable[int]) -> Ring:
    ring: Ring = []
    for i in indexes:
        points = arcs[i] if i >= 0 else arcs[~i][::-1]
        # Consecutive arcs share their joining point: keep it once.
        ring.extend(points[1:] if ring else points)
    if ring and ring[0] != ring[-1]:
        ring.append(ring[0])  # Illinois' outline ends 100 m short of its start in the source
    return ring


def _polygon(arcs: list[list[Point]], rings: list[list[int]]) -> list[Ring]:
    """An outer ring and its holes, without the slivers that enclose nothing: at 1:10,000,000
    some sliver holes (Broomfield's enclaves, a Denver corner) collapse to a line or a point,
    which is no ring a geometry library accepts. A polygon whose outer ring collapsed is none."""
    kept = [ring for ring in (_ring(arcs, r) for r in rings) if len(set(ring)) >= 3]
    return kept if kept and len(set(_ring(arcs, rings[0]))) >= 3 else []


def _polygons(arcs: list[list[Point]], geometry: dict[str, Any]) -> list[list[Ring]]:
    if geometry["type"] == "Polygon":
        parts = [geometry["arcs"]]
    elif geometry["type"] == "MultiPolygon":
        parts = geometry["arcs"]
    else:
        return []  # a null geometry (none in this edition)
    return [polygon for polygon in (_polygon(arcs, rings) for rings in parts) if polygon]


# In degrees: about 100 m, far finer than a label's own size at any zoom that shows it.
LABEL_TOLERANCE = 0.001


def label_point(polygons: Sequence[list[Ring]]) -> list[float]:
    """[lon, lat] well inside the largest part of the outline: where its name is written."""
    largest = max((Polygon(p[0], p[1:]) for p in polygons), key=lambda shape: shape.area)
    point = polylabel(largest, tolerance=LABEL_TOLERANCE)
    return [round(point.x, 4), round(point.y, 4)]


def _feature(fid: str, props: dict[str, Any], polygons: list[list[Ring]]) -> dict[str, Any]:
    coords = [[[list(p) for p in ring] for ring in polygon] for polygon in polygons]
    return {
        "type": "Feature",
        "id": fid,
        "properties": {"id": fid, **props, "label": label_point(polygons)},
        "geometry": {"type": "MultiPolygon", "coordinates": coords},
    }


def _bbox(polygons: Sequence[list[Ring]]) -> list[float]:
    xs = [x for poly in polygons for ring in poly for x, _ in ring]
    ys = [y for poly in polygons for ring in poly for _, y in ring]
    return [min(xs), min(ys), max(xs), max(ys)]


def _collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


def build(source: Path = SOURCE, out: Path = BASEMAP_DIR) -> list[Path]:
    topology = json.loads(source.read_text())
    arcs = _decode_arcs(topology)
    written: list[Path] = []

    def write(name: str, doc: dict[str, Any]) -> None:
        path = out / name
        path.write_text(json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n")
        written.append(path)

    states: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    for g in sorted(topology["objects"]["states"]["geometries"], key=lambda g: g["id"]):
        polygons = _polygons(arcs, g)
        states.append(_feature(g["id"], {"name": g["properties"]["name"]}, polygons))
        index.append({"id": g["id"], "name": g["properties"]["name"], "bbox": _bbox(polygons)})
    names = {s["id"]: s["name"] for s in index}

    by_state: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for g in sorted(topology["objects"]["counties"]["geometries"], key=lambda g: g["id"]):
        state = g["id"][:2]
        if state not in names:
            continue
        polygons = _polygons(arcs, g)
        if not polygons:
            continue  # Falls Church, Virginia: under a square mile, a line at this scale
        props = {"name": g["properties"]["name"], "state": state}
        by_state[state].append(_feature(g["id"], props, polygons))

    write("states.json", _collection(states))
    for state, features in sorted(by_state.items()):
        write(f"counties-{state}.json", _collection(features))
    write("index.json", {"source": "us-atlas 3.0.1, U.S. Census Bureau 2017, 1:10,000,000", "states": index})
    return written


def main() -> int:
    written = build()
    print(f"wrote {len(written)} files to {BASEMAP_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
