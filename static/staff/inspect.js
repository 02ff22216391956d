/* The daily inspection, progressive: the device position goes with it when the phone gives it.
 * The sentences come from the page (#position's data-* attributes), in its language. */
(function () {
  var place = document.getElementById("position");
  if (!place || !navigator.geolocation) return;
  var state = document.getElementById("position-state");
  state.textContent = place.dataset.locating;
  navigator.geolocation.getCurrentPosition(function (p) {
    document.getElementById("lat").value = p.coords.latitude.toFixed(6);
    document.getElementById("lng").value = p.coords.longitude.toFixed(6);
    state.textContent = place.dataset.located.replace("{m}", Math.round(p.coords.accuracy));
  }, function () {
    state.textContent = place.dataset.none;
  }, {enableHighAccuracy: true, timeout: 20000, maximumAge: 60000});
})();
