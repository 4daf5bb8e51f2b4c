// The writ console's only script: asks before a form marked data-confirm is sent
// (stopping agents). Everything works without it.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// The usage page: fetches its live part again every few seconds while the tab is shown,
// swaps it in when the numbers changed, and says so in the page's status line.
(function () {
  var live = document.getElementById("usage-live");
  var src = live && live.getAttribute("data-live-src");
  if (!src) {
    return;
  }
  var status = document.getElementById("usage-status");
  var EVERY_MS = 4000;
  var busy = false;
  var stopped = false;
  var readAt = /<time id="usage-read-at"[\s\S]*?<\/time>/;
  var shown = live.innerHTML.trim().replace(readAt, "");
  function say(text) {
    if (status && status.textContent !== text) {
      status.textContent = text;
    }
  }
  function swap(html) {
    var fresh = html.trim().replace(readAt, "");
    var time = new Date().toISOString().slice(11, 19);
    if (fresh === shown) {
      // Nothing new: only the time it was read moves, and focus stays where it was.
      var holder = document.createElement("div");
      holder.innerHTML = html;
      var next = holder.querySelector("#usage-read-at");
      var current = live.querySelector("#usage-read-at");
      if (next && current) {
        current.replaceWith(next);
      }
      return;
    }
    var details = live.querySelector("details.usage-numbers");
    var open = details && details.open;
    live.innerHTML = html;
    shown = fresh;
    if (open) {
      var again = live.querySelector("details.usage-numbers");
      if (again) {
        again.open = true;
      }
    }
    say("Usage updated at " + time + " UTC.");
  }
  function refresh() {
    if (busy || stopped || document.hidden) {
      return;
    }
    busy = true;
    fetch(src, { credentials: "same-origin", cache: "no-store", redirect: "error" })
      .then(function (response) {
        if (response.status === 401 || response.status === 403 || response.status === 404) {
          stopped = true;
          say("Your session has ended: reload the page to sign in again. These numbers no longer update.");
          return null;
        }
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        if (html !== null) {
          swap(html);
        }
      })
      .catch(function () {
        say("The gateway did not answer; trying again in a few seconds.");
      })
      .then(function () {
        busy = false;
      });
  }
  window.setInterval(refresh, EVERY_MS);
  document.addEventListener("visibilitychange", refresh);
})();
