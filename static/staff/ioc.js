/* The operations centre page: polls the staff API's feed (its address, the poll interval and the
 * state words come from the page's #ioc-words JSON) and recolours the page. */
(function () {
  // Poll the staff API's feed and recolour the page; a failed poll marks it stale, never live.
  var words = JSON.parse(document.getElementById("ioc-words").textContent);
  var updated = document.getElementById("ioc-updated");
  var last = updated.textContent;
  var lastAt = null;
  function text(id, value) { document.getElementById(id).textContent = value; }
  function clock(iso) { var d = new Date(iso); return d.toLocaleTimeString(document.documentElement.lang, {hour12: false}); }
  function setState(el, state) {
    el.setAttribute("class", el.getAttribute("class").replace(/state-[a-z_]+/, "state-" + state));
  }
  function apply(feed) {
    feed.stations.forEach(function (s) {
      document.querySelectorAll('[data-station="' + s.id + '"]').forEach(function (el) {
        if (el.tagName.toLowerCase() === "circle") {
          setState(el, s.state);
          el.querySelector("title").textContent = s.name + " · " + words.states[s.state];
          return;
        }
        var badge = el.querySelector('[data-field="state"]');
        setState(badge, s.state);
        badge.textContent = words.states[s.state];
        el.querySelector('[data-field="visitors"]').textContent =
          s.visitors_today === null ? words.no_counter : s.visitors_today;
        el.querySelector('[data-field="since"]').textContent =
          s.visitor_threshold ? s.visitors_since_cleaning + " / " + s.visitor_threshold : "";
      });
    });
    text("ioc-visitors", feed.visitors_today);
    text("ioc-cleaning", feed.counts.cleaning_due);
    text("ioc-offline", feed.counts.sensor_offline);
    text("ioc-open", feed.work_orders.open);
    text("ioc-overdue", feed.work_orders.overdue);
    lastAt = clock(feed.at);
    updated.textContent = updated.dataset.updated.replace("{t}", lastAt);
    updated.classList.remove("problem");
  }
  function poll() {
    fetch(words.feed, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(apply)
      .catch(function () {
        updated.textContent = updated.dataset.stale.replace("{t}", lastAt || last);
        updated.classList.add("problem");
      })
      .then(function () { setTimeout(poll, words.poll_ms); });
  }
  setTimeout(poll, words.poll_ms);
})();
