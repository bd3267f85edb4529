"""The offline base layer, read from the files basemap_build made (streams/web/static/basemap/)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from streams.adapters.basemap_build import BASEMAP_DIR
from streams.domain.regions import Outline, Region, bbox_of


def _region(feature: dict[str, Any], state: str) -> Region:
    outlines: tuple[Outline, ...] = tuple(
        tuple(tuple((float(x), float(y)) for x, y in ring) for ring in polygon)
        for polygon in feature["geometry"]["coordinates"]
    )
    return Region(feature["id"], feature["properties"]["name"], state, outlines, bbox_of(outlines))


def _features(path: Path) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = json.loads(path.read_text())["features"]
    return features


@cache
def states(directory: Path = BASEMAP_DIR) -> tuple[Region, ...]:
    return tuple(_region(f, f["id"]) for f in _features(directory / "states.json"))


@cache
def counties_of(state: str, directory: Path = BASEMAP_DIR) -> tuple[Region, ...]:
    """The counties of one state (2-digit FIPS); none for an id the layer does not know."""
    path = directory / f"counties-{state}.json"
    if not (len(state) == 2 and state.isdigit() and path.exists()):
        return ()
    return tuple(_region(f, state) for f in _features(path))


def states_in(box: tuple[float, float, float, float], directory: Path = BASEMAP_DIR) -> list[Region]:
    return [s for s in states(directory) if s.meets_box(box)]


def counties_in(box: tuple[float, float, float, float], directory: Path = BASEMAP_DIR) -> list[Region]:
    """Every county whose bounding box meets `box` (min lon, min lat, max lon, max lat)."""
    return [c for s in states_in(box, directory) for c in counties_of(s.id, directory) if c.meets_box(box)]


def county_at(
    lon: float, lat: float, directory: Path = BASEMAP_DIR, state: str | None = None
) -> Region | None:
    """The county holding a point, from the layer's outlines (1:10,000,000: near a county line,
    the registry's own county is the better answer); only `state`'s counties when given (the
    statistics place thousands of points in one state: a tenth of the time of every state's)."""
    candidates = counties_of(state, directory) if state else counties_in((lon, lat, lon, lat), directory)
    for county in candidates:
        if county.contains(lon, lat):
            return county
    return None
