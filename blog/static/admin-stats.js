// Keep the stats page live: every few seconds, fetch the page again and swap in its fresh
// figures and chart. The server draws everything; this only replaces each element marked
// data-live (the figures, and the footer's "this page took") with the same element, by id,
// from the new copy. Without this script the page still works (reload it).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var delay = 1000 * (Number(live.dataset.refreshSeconds) || 5);

  function swapIn(fresh) {
    document.querySelectorAll("[data-live][id]").forEach(function (old) {
      var replacement = fresh.getElementById(old.id);
      if (replacement) old.replaceWith(replacement);
    });
  }

  function refresh() {
    if (document.hidden) {  // nobody is looking: do not poll a background tab
      setTimeout(refresh, delay);
      return;
    }
    fetch(window.location.href, { headers: { Accept: "text/html" } })
      .then(function (response) {
        // A redirect means the session ended (to the login page): keep what is shown.
        return response.ok && !response.redirected ? response.text() : null;
      })
      .catch(function () { return null; })
      .then(function (html) {
        if (html) swapIn(new DOMParser().parseFromString(html, "text/html"));
        setTimeout(refresh, delay);
      });
  }

  setTimeout(refresh, delay);
})();
