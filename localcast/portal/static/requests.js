// An appliance request's page while the planner works: ask for its status every 2 s and
// reload the page once the answer is in (the "Refresh" link does the same by hand).
(function () {
  "use strict";
  var el = document.getElementById("request-status");
  if (!el || el.dataset.status !== "evaluating") return;
  var id = el.dataset.request, tries = 0;
  function poll() {
    if (++tries > 120) return; // four minutes: leave it to the Refresh link
    fetch("/portal/requests/" + encodeURIComponent(id) + "/status", {
      headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store"
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.status !== "evaluating") window.location.reload();
        else setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 4000); });
  }
  setTimeout(poll, 1500);
})();
