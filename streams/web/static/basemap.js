/* SorMap: the site's map drawing, shared by every page with a map. The offline base layer
   (state and county outlines with names, from /static/basemap/), tiles on top when configured,
   geodesic circles given as rings, markers shaped by address type, and the legend control.
   Everything is fetched from this site; nothing is written as HTML, names go in as text. */
(function () {
  "use strict";
  var ROOT = "/static/";
  var SVG = "http://www.w3.org/2000/svg";
  var KINDS = { tracked: 1, home: 1, work: 1, school: 1, temporary: 1, other: 1 };
  // Counties are drawn from this zoom (a state or closer), and named from COUNTY_NAMES on;
  // further out the states are named instead.
  var COUNTY_LINES = 6;
  var COUNTY_NAMES = 8;
  var PANES = [["sorLand", 150], ["sorCounties", 155], ["sorBorders", 160], ["sorLabels", 170]];
  var LAND = { stroke: false, fill: true, fillColor: "#fbf9f3", fillOpacity: 1 };
  var BORDERS = { color: "#7b7567", weight: 1.8, opacity: 0.9, fill: false };
  var COUNTY = { color: "#a9a394", weight: 1, opacity: 0.9, fill: false, dashArray: null };

  function ensurePanes(map) {
    PANES.forEach(function (p) {
      if (!map.getPane(p[0])) {
        var pane = map.createPane(p[0]);
        pane.style.zIndex = String(p[1]); // below the tiles (200): tiles, when there are any, cover it
        pane.style.pointerEvents = "none";
      }
    });
  }

  var fetched = {}; // one fetch per file, however many maps on the page draw it

  function getJSON(url) {
    if (!fetched[url]) {
      fetched[url] = fetch(url, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) { throw new Error(url + ": " + r.status); }
        return r.json();
      });
    }
    return fetched[url];
  }

  function boundsOf(feature) {
    if (!feature.sorBounds) { feature.sorBounds = L.geoJSON(feature).getBounds(); }
    return feature.sorBounds;
  }

  // Even-odd ray casting over every ring of a (Multi)Polygon in [lon, lat].
  function inside(lon, lat, geometry) {
    var polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
    var hit = false;
    for (var i = 0; i < polygons.length; i++) {
      for (var j = 0; j < polygons[i].length; j++) {
        var ring = polygons[i][j];
        for (var k = 0, m = ring.length - 1; k < ring.length; m = k++) {
          var a = ring[k], b = ring[m];
          if ((a[1] > lat) !== (b[1] > lat) && lon < a[0] + (lat - a[1]) * (b[0] - a[0]) / (b[1] - a[1])) {
            hit = !hit;
          }
        }
      }
    }
    return hit;
  }

  function overlaps(a, list) {
    for (var i = 0; i < list.length; i++) {
      var b = list[i];
      if (a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]) { return true; }
    }
    return false;
  }

  function labelIcon(name, state) {
    var span = document.createElement("span");
    span.textContent = name;
    return L.divIcon({ className: "sor-label" + (state ? " sor-label-state" : ""), html: span, iconSize: null });
  }

  /* The base layer under everything else on `map` (whose view must be set). Options:
     countyStyle(feature) and onEachCounty(feature, layer) for a choropleth; states: FIPS ids
     whose counties alone load, whatever the view (else those of the states in view, when close
     enough); avoid(): LatLngs of symbols that names keep clear of; names: false for none.
     Returns { ready: a Promise of the first drawing, counties: the county layer, relabel() }. */
  function base(map, options) {
    var opts = options || {};
    var root = opts.root || ROOT + "basemap/";
    ensurePanes(map);
    map.attributionControl && map.attributionControl.addAttribution("Boundaries: U.S. Census Bureau");
    var land = L.geoJSON(null, { pane: "sorLand", interactive: false, style: LAND }).addTo(map);
    var borders = L.geoJSON(null, { pane: "sorBorders", interactive: false, style: BORDERS }).addTo(map);
    var counties = L.geoJSON(null, {
      pane: "sorCounties",
      interactive: Boolean(opts.onEachCounty),
      style: opts.countyStyle || COUNTY,
      onEachFeature: opts.onEachCounty
    });
    var labels = L.layerGroup().addTo(map);
    var index = [], states = [], named = [], loading = {};

    function remember(list, feature) {
      list.push({ feature: feature, bounds: boundsOf(feature) });
    }

    function loadCounties(id) {
      if (!loading[id]) {
        loading[id] = getJSON(root + "counties-" + id + ".json").then(function (doc) {
          counties.addData(doc);
          doc.features.forEach(function (f) { remember(named, f); });
        });
      }
      return loading[id];
    }

    function wanted() {
      if (opts.states) { return opts.states.slice(); } // a choropleth: those states' counties alone
      var want = [];
      if (map.getZoom() >= COUNTY_LINES) {
        var view = map.getBounds().pad(0.25);
        index.forEach(function (s) {
          var b = L.latLngBounds([s.bbox[1], s.bbox[0]], [s.bbox[3], s.bbox[2]]);
          if (view.intersects(b)) { want.push(s.id); }
        });
      }
      return want;
    }

    function update() {
      var showCounties = map.getZoom() >= COUNTY_LINES || Boolean(opts.states);
      if (showCounties && !map.hasLayer(counties)) { counties.addTo(map); }
      if (!showCounties && map.hasLayer(counties)) { map.removeLayer(counties); }
      return Promise.all(wanted().map(loadCounties)).then(relabel, relabel);
    }

    // Points of the view inside the region, nearest its own label point first: a county larger
    // than the view is still named on it, as near its middle as the view and the symbols allow.
    function pointsInView(item, size) {
      var target = L.latLng(item.feature.properties.label[1], item.feature.properties.label[0]);
      var found = [], steps = 10;
      for (var i = 1; i < steps; i++) {
        for (var j = 1; j < steps; j++) {
          var at = map.containerPointToLatLng([size.x * i / steps, size.y * j / steps]);
          if (inside(at.lng, at.lat, item.feature.geometry)) { found.push({ at: at, d: at.distanceTo(target) }); }
        }
      }
      found.sort(function (a, b) { return a.d - b.d; });
      return found.map(function (f) { return f.at; });
    }

    function relabel() {
      labels.clearLayers();
      if (opts.names === false) { return; }
      var stateNames = map.getZoom() < (opts.countyNames || COUNTY_NAMES);
      var source = stateNames ? states : named;
      var view = map.getBounds(), size = map.getSize(), taken = [];
      // Names keep clear of the controls (zoom, key, wider area) and of the symbols.
      var frame = map.getContainer().getBoundingClientRect();
      Array.prototype.forEach.call(map.getContainer().querySelectorAll(".leaflet-control"), function (el) {
        var r = el.getBoundingClientRect();
        if (el.closest(".leaflet-container") !== map.getContainer()) { return; } // a map inside a control
        taken.push([r.left - frame.left - 4, r.top - frame.top - 4, r.right - frame.left + 4, r.bottom - frame.top + 4]);
      });
      (opts.avoid ? opts.avoid() : []).forEach(function (ll) {
        var p = map.latLngToContainerPoint(ll);
        taken.push([p.x - 16, p.y - 16, p.x + 16, p.y + 16]);
      });
      source
        .filter(function (item) { return view.intersects(item.bounds); })
        .sort(function (a, b) { return area(b.bounds) - area(a.bounds); })
        .forEach(function (item) {
          var name = item.feature.properties.name;
          var w = name.length * (stateNames ? 11 : 8) + 10, h = 20;
          var at = L.latLng(item.feature.properties.label[1], item.feature.properties.label[0]);
          var box = boxAt(map.latLngToContainerPoint(at), w, h);
          if (!within(box, size) || overlaps(box, taken)) {
            var fits = function (ll) {
              box = boxAt(map.latLngToContainerPoint(ll), w, h);
              return within(box, size) && !overlaps(box, taken);
            };
            at = pointsInView(item, size).filter(fits)[0];
            if (!at) { return; }
            box = boxAt(map.latLngToContainerPoint(at), w, h);
          }
          taken.push(box);
          L.marker(at, {
            icon: labelIcon(name, stateNames), pane: "sorLabels", interactive: false, keyboard: false
          }).addTo(labels);
        });
    }

    var ready = Promise.all([getJSON(root + "index.json"), getJSON(root + "states.json")]).then(function (docs) {
      index = docs[0].states;
      land.addData(docs[1]);
      borders.addData(docs[1]);
      docs[1].features.forEach(function (f) { remember(states, f); });
      map.on("moveend", update);
      return update();
    });
    // Without its files the map keeps its plain background; the page says the rest in words.
    ready.catch(function () {});
    return { ready: ready, counties: counties, relabel: relabel };
  }

  function area(b) {
    return (b.getEast() - b.getWest()) * (b.getNorth() - b.getSouth());
  }
  function boxAt(p, w, h) { return [p.x - w / 2, p.y - h / 2, p.x + w / 2, p.y + h / 2]; }
  function within(box, size) { return box[0] >= 2 && box[1] >= 2 && box[2] <= size.x - 2 && box[3] <= size.y - 2; }

  /* A map in `holder` with the plain background; tiles on top when a URL is given. */
  function create(holder, options) {
    var opts = options || {};
    holder.classList.add("sor-map");
    var map = L.map(holder, { scrollWheelZoom: false, zoomSnap: 0.5 });
    ensurePanes(map);
    if (opts.tiles) {
      L.tileLayer(opts.tiles, { maxZoom: 19, attribution: opts.attribution || "" }).addTo(map);
    }
    return map;
  }

  /* A small map of the wider area in a corner of `map`, the view marked on it: offline, with no
     streets to go by, it shows which county and state the close-up lies in. */
  function overview(map, options) {
    var opts = options || {};
    var Control = L.Control.extend({
      options: { position: opts.position || "topright" },
      onAdd: function () {
        var box = L.DomUtil.create("div", "leaflet-control sor-overview");
        box.setAttribute("aria-hidden", "true"); // a picture of what the page says in words
        return box;
      }
    });
    var control = new Control().addTo(map);
    var small = L.map(control.getContainer(), {
      zoomControl: false, attributionControl: false, dragging: false, keyboard: false, boxZoom: false,
      doubleClickZoom: false, scrollWheelZoom: false, touchZoom: false, zoomSnap: 0.5, fadeAnimation: false
    });
    small.getContainer().classList.add("sor-map");
    small.getContainer().removeAttribute("tabindex");
    var frame = null;
    function follow() {
      small.setView(map.getCenter(), Math.max(map.getZoom() - (opts.zoomOut || 5), 3), { animate: false });
      var view = map.getBounds();
      if (frame) { frame.setBounds(view); } else {
        frame = L.rectangle(view, { color: "#b3261e", weight: 2, fill: false, interactive: false }).addTo(small);
      }
    }
    follow();
    base(small, { countyNames: opts.countyNames || 7, avoid: function () { return [map.getCenter()]; } });
    map.on("moveend", follow);
    return control;
  }

  /* The block around a map (map, note, legend) starts hidden: no script, no map. */
  function reveal(holder) {
    var block = holder.closest(".map-block");
    (block || holder).hidden = false;
    holder.hidden = false;
  }

  /* A symbol of map-symbols.svg, as an <svg> element. */
  function symbol(kind, approximate) {
    var svg = document.createElementNS(SVG, "svg");
    var use = document.createElementNS(SVG, "use");
    kind = KINDS[kind] ? kind : "other";
    svg.setAttribute("class", "sor-symbol " + kind + (approximate ? " approx" : ""));
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    use.setAttribute("href", ROOT + "map-symbols.svg#" + kind);
    svg.appendChild(use);
    return svg;
  }

  /* A marker at `latlng` shaped by the kind of place; `label` is its accessible name. */
  function marker(latlng, kind, options) {
    var opts = options || {};
    var size = kind === "tracked" ? 30 : 26;
    var m = L.marker(latlng, {
      icon: L.divIcon({
        className: "sor-marker", html: symbol(kind, opts.approximate),
        iconSize: [size, size], iconAnchor: [size / 2, size / 2], popupAnchor: [0, -size / 2]
      }),
      title: opts.label || "",
      alt: opts.label || "",
      keyboard: true,
      zIndexOffset: kind === "tracked" ? -1000 : 0 // an offender's point is never hidden under yours
    });
    m.on("add", function () {
      var el = m.getElement();
      if (el && opts.label) { el.setAttribute("aria-label", opts.label); }
    });
    return m;
  }

  /* The tracked circle: `ring` is [[lat, lon], ...] computed by the server on the geodesic. */
  function circle(ring, options) {
    // A low smoothFactor keeps the ring's vertices: Leaflet's default would cut it to a polygon.
    var style = { color: "#0b4f8a", weight: 2.5, fillColor: "#0b4f8a", fillOpacity: 0.08, smoothFactor: 0.2 };
    return L.polygon(ring, L.extend(style, options || {}));
  }

  /* A copy of the page's legend `element` on the map (the page's own stays for readers). */
  function legend(map, element, position) {
    if (!element) { return null; }
    var Control = L.Control.extend({
      options: { position: position || "bottomleft" },
      onAdd: function () {
        var box = L.DomUtil.create("div", "leaflet-control sor-legend");
        var copy = element.cloneNode(true);
        copy.removeAttribute("id");
        Array.prototype.forEach.call(copy.querySelectorAll("[id]"), function (el) { el.removeAttribute("id"); });
        Array.prototype.forEach.call(copy.querySelectorAll("[aria-labelledby]"), function (el) {
          el.removeAttribute("aria-labelledby");
        });
        box.setAttribute("aria-hidden", "true"); // the same words are on the page, once is enough
        box.appendChild(copy);
        L.DomEvent.disableClickPropagation(box);
        return box;
      }
    });
    return new Control().addTo(map);
  }

  window.SorMap = {
    base: base, create: create, reveal: reveal, symbol: symbol, marker: marker, circle: circle,
    legend: legend, overview: overview, inside: inside
  };
})();
