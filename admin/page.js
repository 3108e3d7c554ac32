// Refresh: every 5 seconds fetch this page again and swap its server-drawn
// part (#live) in, keeping open hints open. The data is only ever parsed
// as the server's own HTML; nothing here builds markup from it.
(function () {
  "use strict";
  var every = 5000;
  var auto = document.getElementById("auto");
  var stale = document.getElementById("stale");
  var lastGood = new Date();
  var refreshes = 0;
  document.getElementById("controls").hidden = false;

  function swap(text) {
    var doc = new DOMParser().parseFromString(text, "text/html");
    var next = doc.getElementById("live");
    var cur = document.getElementById("live");
    if (!next || !cur) {
      throw new Error("the answer holds no status");
    }
    var open = {};
    cur.querySelectorAll("details[open][id]").forEach(function (d) { open[d.id] = true; });
    next.querySelectorAll("details[id]").forEach(function (d) { d.open = !!open[d.id]; });
    cur.replaceWith(document.adoptNode(next));
    document.title = doc.title;
  }

  function refresh() {
    if (!auto.checked) {
      setTimeout(refresh, every);
      return;
    }
    fetch(location.pathname, { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("HTTP " + r.status);
        }
        return r.text();
      })
      .then(function (text) {
        swap(text);
        lastGood = new Date();
        document.body.dataset.refreshes = String(++refreshes);
        document.body.classList.remove("stale");
      })
      .catch(function (e) {
        stale.textContent = "Not refreshed since " + lastGood.toLocaleTimeString() +
          ": upmedic's admin API did not answer (" + e.message + ")";
        document.body.classList.add("stale");
      })
      .finally(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
