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
  function say(text) {
    if (status && status.textContent !== text) {
      status.textContent = text;
    }
  }
  // The part as the browser holds it, without what changes on every reading (the time
  // it was read) or by the reader (an opened <details>).
  function numbers(element) {
    var copy = element.cloneNode(true);
    var stamp = copy.querySelector("#usage-read-at");
    if (stamp) {
      stamp.remove();
    }
    copy.querySelectorAll("details").forEach(function (d) {
      d.removeAttribute("open");
    });
    return copy.innerHTML.trim();
  }
  function swap(html) {
    var fresh = document.createElement("div");
    fresh.innerHTML = html;
    var stamp = fresh.querySelector("#usage-read-at");
    if (numbers(fresh) === numbers(live)) {
      // Nothing new: only the time it was read moves, and focus stays where it was.
      var current = live.querySelector("#usage-read-at");
      if (stamp && current) {
        current.replaceWith(stamp);
      }
      return;
    }
    var details = live.querySelector("details.usage-numbers");
    if (details && details.open) {
      var again = fresh.querySelector("details.usage-numbers");
      if (again) {
        again.open = true;
      }
    }
    live.replaceChildren.apply(live, Array.prototype.slice.call(fresh.childNodes));
    var at = stamp ? (stamp.getAttribute("datetime") || "").slice(11, 19) : "";
    say("Usage updated: numbers read at " + at + " UTC.");
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
