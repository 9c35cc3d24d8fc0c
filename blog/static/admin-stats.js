// Keep the stats page live: every few seconds, fetch the page again and swap in its fresh
// figures and chart. The server draws everything; this only replaces one element with the
// same element from the new copy. Without this script the page still works (reload it).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var delay = 1000 * (Number(live.dataset.refreshSeconds) || 5);

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
        var fresh = html && new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (fresh) {
          live.replaceWith(fresh);
          live = fresh;
        }
        setTimeout(refresh, delay);
      });
  }

  setTimeout(refresh, delay);
})();
