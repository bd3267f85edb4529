/* Draws the map page from its JSON data block with SorMap (basemap.js); the page lists the same facts as text. */
(function () {
  "use strict";
  function popup(p) {
    var box = document.createElement("div");
    var link = document.createElement("a");
    link.href = p.record;
    link.textContent = p.name;
    box.appendChild(link);
    var text = " (" + p.type + " address): " + p.address + (p.approximate ? ", location approximate" : "");
    box.appendChild(document.createTextNode(text + (p.distance ? ", " + p.distance : "")));
    return box;
  }

  function start() {
    var holder = document.getElementById("map");
    var source = document.getElementById("map-data");
    if (!holder || !source || typeof L === "undefined" || typeof SorMap === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var places = data.places || [];
    if (!data.tracked && places.length === 0) { return; }
    SorMap.reveal(holder);
    var map = SorMap.create(holder, { tiles: data.tiles, attribution: data.attribution });
    var bounds = L.latLngBounds([]);
    var points = [];
    if (data.tracked) {
      var t = data.tracked;
      bounds.extend(SorMap.circle(t.ring).addTo(map).getBounds());
      SorMap.marker([t.lat, t.lon], "tracked", { label: (t.name || "Your tracked address " + t.label) + ": " + t.address })
        .bindPopup(document.createTextNode(t.label + ": " + t.address))
        .addTo(map);
      points.push(L.latLng(t.lat, t.lon));
    }
    places.forEach(function (p) {
      var label = p.name + ", " + p.type + " address: " + p.address + (p.approximate ? ", location approximate" : "");
      SorMap.marker([p.lat, p.lon], p.kind, { label: label, approximate: p.approximate })
        .bindPopup(popup(p))
        .bindTooltip(document.createTextNode(p.name))
        .addTo(map);
      points.push(L.latLng(p.lat, p.lon));
      bounds.extend([p.lat, p.lon]);
    });
    // On a wide map the key and the wider area sit on its right, and the places keep clear of
    // them; on a narrow one the page's own key, just below, is enough.
    var right = 0;
    if (holder.clientWidth >= 600) {
      var key = SorMap.legend(map, document.getElementById("map-legend"), "bottomright");
      right = key ? key.getContainer().offsetWidth + 20 : 0;
    }
    // Without street tiles, closer than this shows nothing but the symbols themselves.
    map.fitBounds(bounds.pad(0.15), { maxZoom: data.tiles ? 17 : 14, paddingBottomRight: [right, 0] });
    if (right && !data.tiles) { SorMap.overview(map); }
    SorMap.base(map, { avoid: function () { return points; } });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
