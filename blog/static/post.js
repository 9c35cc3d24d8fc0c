// While the tagger works on a post, ask the server for its tags now and then, and show them
// as soon as they arrive, without a reload. The page works without this script too.
(function () {
  "use strict";
  var box = document.getElementById("tags");
  if (!box || box.dataset.state !== "pending") return;

  var delay = 500;
  var deadline = Date.now() + 10 * 60 * 1000;  // retries with backoff can take minutes

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  // "3 Dec 2026, 18:40 UTC", as the server's |datetime filter writes it on a reload.
  function utcDate(isoString) {
    var d = new Date(isoString);
    function two(n) { return String(n).padStart(2, "0"); }
    return d.getUTCDate() + " " + MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear() + ", " +
      two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + " UTC";
  }

  function tagLink(tag) {
    var link = document.createElement("a");
    link.className = "tag tag-" + tag.source;
    link.href = tag.url;
    link.title = tag.source === "author" ? "Added by the author" : "Added by the tagger";
    link.textContent = tag.name;  // text, never HTML
    var item = document.createElement("li");
    item.appendChild(link);
    return item;
  }

  function show(status) {
    var list = box.querySelector("ul.tags");
    list.replaceChildren.apply(list, status.tags.map(tagLink));
    var state = document.getElementById("tagging-state");
    state.className = "tagging tagging-" + status.state;
    state.textContent = status.state === "failed"
      ? "The tagger could not tag this post, even after retrying. Editing the post tries again."
      : "✦ marks the tags the tagger added (" + utcDate(status.changed_at) + ").";
    box.dataset.state = status.state;
  }

  function poll() {
    fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .catch(function () { return null; })
      .then(function (status) {
        if (status && status.state !== "pending") {
          show(status);
        } else if (Date.now() < deadline) {
          delay = Math.min(delay * 1.3, 5000);
          setTimeout(poll, delay);
        }
      });
  }

  setTimeout(poll, delay);
})();
