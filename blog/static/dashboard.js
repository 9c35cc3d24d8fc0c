// For the RQ dashboard's buttons: post, then say in the page what happened. rq-dashboard's own
// scripts post and say nothing, even when the server refuses or fails. Its pages load this
// after jQuery; the scripts in templates/rq_dashboard/scripts/ call dashboardAction().
(function ($) {
  "use strict";

  function notice(ok, text) {
    var box = document.getElementById("dashboard-notice");
    box.className = "alert " + (ok ? "alert-success" : "alert-danger");
    box.textContent = text;
    box.hidden = false;
  }

  function refusal(xhr) {
    if (xhr.status === 0) return "the server did not answer.";
    if (xhr.status === 403) return "you may not do that here (403).";
    if (xhr.status === 404) return "it is not there any more (404).";
    return "the server answered " + xhr.status + " " + xhr.statusText + ".";
  }

  // POST to url. On success, show success (a string, or a function of the answer) and call
  // then(answer); otherwise say why "Could not <what>".
  window.dashboardAction = function (url, what, success, then) {
    return $.post(url)
      .done(function (answer) {
        if (answer && answer.status === "OK") {
          notice(true, typeof success === "function" ? success(answer) : success);
          if (then) then(answer);
        } else if (answer && answer.status === "DISABLED") {
          notice(false, "Could not " + what + ": deleting is turned off (RQ_DASHBOARD_DISABLE_DELETE).");
        } else {
          notice(false, "Could not " + what + ": the job is not there any more.");
        }
      })
      .fail(function (xhr) { notice(false, "Could not " + what + ": " + refusal(xhr)); });
  };
})(jQuery);
