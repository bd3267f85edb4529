/* Draws the map page from its JSON data block; the page lists the same facts as text. */
(function () {
  "use strict";
  function start() {
    var holder = document.getElementById("map");
    var source = document.getElementById("map-data");
    if (!holder || !source || typeof L === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var places = data.places || [];
    if (!data.tracked && places.length === 0) { return; }
    holder.hidden = false;
    var map = L.map(holder, { scrollWheelZoom: false });
    if (data.tiles) {
      L.tileLayer(data.tiles, { maxZoom: 19, attribution: data.attribution || "" }).addTo(map);
    }
    var bounds = L.latLngBounds([]);
    if (data.tracked) {
      var t = data.tracked;
      L.circle([t.lat, t.lon], { radius: t.radius_m, color: "#0b4f8a", weight: 2, fillOpacity: 0.08 }).addTo(map);
      L.marker([t.lat, t.lon], { title: t.label, alt: t.label })
        .bindPopup(document.createTextNode(t.label + ": " + t.address))
        .addTo(map);
      // The circle's own bounds need a map view; this one does not.
      bounds.extend(L.latLng(t.lat, t.lon).toBounds(2 * t.radius_m));
    }
    places.forEach(function (p) {
      var text = p.name + " (" + p.type + "): " + p.address + (p.approximate ? " - location approximate" : "");
      L.circleMarker([p.lat, p.lon], {
        radius: 8, color: "#8a1c0b", weight: 2, fillOpacity: p.approximate ? 0.15 : 0.7,
        dashArray: p.approximate ? "4 4" : null
      }).bindPopup(document.createTextNode(text)).bindTooltip(document.createTextNode(p.name)).addTo(map);
      bounds.extend([p.lat, p.lon]);
    });
    if (bounds.isValid()) {
      map.fitBounds(bounds.pad(0.15), { maxZoom: 17 });
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
