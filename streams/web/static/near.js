/* "Use my location" on the near page: the browser's position fills the location form, which is sent as a plain GET. */
(function () {
  "use strict";
  function start() {
    var button = document.getElementById("near-locate");
    var form = document.getElementById("near-location");
    var status = document.getElementById("near-locate-status");
    var radius = document.getElementById("n-radius");
    if (!button || !form || !("geolocation" in navigator)) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      status.textContent = "Asking your browser for your location…";
      navigator.geolocation.getCurrentPosition(function (pos) {
        form.elements.lat.value = pos.coords.latitude.toFixed(6);
        form.elements.lon.value = pos.coords.longitude.toFixed(6);
        form.elements.radius.value = radius ? radius.value : "1mi";
        status.textContent = "Looking near your location…";
        form.submit();
      }, function () {
        status.textContent = "Your location is not available. Type an address instead.";
      }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
