"""The map page's data and assets: the geodesic ring, the address types and their legend, the
offline base layer served from this site."""

from __future__ import annotations

import json
import re
from typing import Any

from pyproj import Geod

from streams.adapters import repository
from tests.web.test_tracking import HITT_AT, insert_address, near, offender, seed_registry, visible

WGS84 = Geod(ellps="WGS84")


def map_data(page: str) -> dict[str, Any]:
    block = re.search(r'<script type="application/json" id="map-data">(.*?)</script>', page, re.S)
    assert block is not None
    data: dict[str, Any] = json.loads(block.group(1))
    return data


async def test_the_tracked_circle_is_a_ring_of_points_at_the_radius_on_the_ellipsoid(
    logged_in_site, engine
) -> None:
    site = logged_in_site
    seed_registry(engine)
    for radius, metres in (("500ft", 152.4), ("1mi", 1609.344), ("5mi", 8046.72)):
        aid = insert_address(engine, site.subscriber_id, f"Radius {radius}", radius=radius)
        resp = await site.client.get(f"/map?tracked={aid}")
        assert resp.status == 200
        tracked = map_data(await resp.text())["tracked"]
        ring = tracked["ring"]
        assert len(ring) >= 37 and ring[0] == ring[-1]  # closed, a vertex at least every 10 degrees
        azimuths = []
        for lat, lon in ring:
            az, _, d = WGS84.inv(HITT_AT[1], HITT_AT[0], lon, lat)
            assert abs(d - metres) < 0.02, (radius, lat, lon, d)  # a centimetre of rounding
            azimuths.append(az % 360)
        # All the way round, evenly: no gap wider than 10 degrees.
        turns = sorted(azimuths[:-1])
        gaps = [b - a for a, b in zip(turns, turns[1:])] + [turns[0] + 360 - turns[-1]]
        assert max(gaps) <= 10.0


async def test_each_place_on_the_map_says_its_address_type_and_the_legend_names_the_shapes(
    logged_in_site, engine
) -> None:
    site = logged_in_site
    seed_registry(engine)
    school = near("school", "1104 N Providence Rd", 38.9525, -92.3345)
    assert repository.save_offender_state(engine, offender("OFF-SCH", "Sid", "Schooler", school))
    aid = insert_address(engine, site.subscriber_id, "Home", radius="1mi")
    page = await (await site.client.get(f"/map?tracked={aid}")).text()
    kinds = {p["name"]: (p["kind"], p["type"]) for p in map_data(page)["places"]}
    assert kinds == {
        "Nora Nearby": ("home", "Home"),
        "Milo Middleton": ("work", "Work"),
        "Sid Schooler": ("school", "School"),
    }
    legend = page[page.index('id="map-legend"') :]
    legend = legend[: legend.index("</div>")]
    symbols = re.findall(r'<use href="/static/map-symbols.svg#(\w+)"/>', legend)
    assert symbols == ["tracked", "circle", "home", "work", "school"]
    words = visible(legend)
    for text in (
        "Your tracked address",
        "1 mile around it",
        "Home address",
        "Work address",
        "School address",
    ):
        assert text in words, text
    assert "approximate" not in words  # only what this map shows
    # The map is named, and says the list holds the same facts.
    assert 'role="region" aria-label="Map of the places listed below" aria-describedby="map-note"' in page
    assert re.search(
        r'id="map-note"[^>]*>Everything on this map is also written out in the list below it', page
    )

    svg = await site.client.get("/static/map-symbols.svg")
    assert svg.status == 200 and svg.content_type == "image/svg+xml"
    ids = set(re.findall(r'<symbol id="(\w+)"', await svg.text()))
    assert set(symbols) <= ids and {"temporary", "other", "approximate"} <= ids


async def test_an_offenders_map_marks_an_approximate_place_and_the_legend_says_so(
    logged_in_site, engine
) -> None:
    seed_registry(engine)
    page = await (await logged_in_site.client.get("/map?offender=OFF-APPROX")).text()
    [place] = map_data(page)["places"]
    assert (place["kind"], place["approximate"]) == ("home", True)
    assert map_data(page)["tracked"] is None
    legend = visible(page[page.index('id="map-legend"') :])
    assert "Home address" in legend and "Location approximate" in legend
    assert "Your tracked address" not in legend


async def test_the_map_page_loads_only_this_sites_scripts_and_styles(logged_in_site, engine) -> None:
    site = logged_in_site
    seed_registry(engine)
    aid = insert_address(engine, site.subscriber_id, "Home")
    resp = await site.client.get(f"/map?tracked={aid}")
    page = await resp.text()
    scripts = re.findall(r"<script\b([^>]*)>", page)
    srcs = [m.group(1) for a in scripts if (m := re.search(r'src="([^"]*)"', a))]
    assert "/static/basemap.js" in srcs and "/static/map.js" in srcs
    assert all(s.startswith("/static/") for s in srcs), srcs
    assert all('type="application/json"' in a for a in scripts if "src=" not in a)  # data, not code
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert "/static/basemap.css" in styles and all(h.startswith("/static/") for h in styles), styles
    assert not re.search(r'(src|href)="(https?:)?//', page.split("</head>")[0])
    policy = resp.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "connect-src 'self';" in policy
    for path in srcs + styles:
        asset = await site.client.get(path)
        assert asset.status == 200, path


async def test_the_base_layer_files_are_served_as_json(site) -> None:
    index = await site.client.get("/static/basemap/index.json")
    assert index.status == 200 and index.content_type == "application/json"
    states = (await index.json())["states"]
    assert {"id": "29", "name": "Missouri"}.items() <= next(s for s in states if s["id"] == "29").items()
    for path in ("/static/basemap/states.json", "/static/basemap/counties-29.json"):
        resp = await site.client.get(path)
        assert resp.status == 200 and resp.content_type == "application/json", path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        doc = await resp.json()
        assert doc["type"] == "FeatureCollection"
    boone = next(f for f in doc["features"] if f["properties"]["name"] == "Boone")
    assert len(boone["properties"]["label"]) == 2
