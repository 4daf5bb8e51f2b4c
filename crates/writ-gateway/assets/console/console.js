// The writ console's only script: asks before a form marked data-confirm is sent
// (stopping agents), and refreshes the detections feed. Everything works without it.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// The detections page: fetches its feed (a fragment the server renders, escaped) every
// few seconds while the page is visible, and swaps it in when it changed. Stops, saying
// so, when the session has ended.
(function () {
  var feed = document.getElementById("detections-feed");
  var url = feed && feed.getAttribute("data-feed");
  if (!url) {
    return;
  }
  var state = document.getElementById("feed-state");
  var timer = null;
  function normal(html) {
    return html.replace(/\s+/g, " ").trim();
  }
  function stop(message) {
    window.clearInterval(timer);
    timer = null;
    if (state) {
      state.textContent = message;
    }
  }
  function refresh() {
    if (document.visibilityState !== "visible") {
      return;
    }
    fetch(url, { credentials: "same-origin", redirect: "manual", headers: { accept: "text/html" } })
      .then(function (response) {
        if (response.type === "opaqueredirect" || !response.ok) {
          stop("The feed stopped refreshing: reload the page (you may need to sign in again).");
          return null;
        }
        return response.text();
      })
      .then(function (text) {
        if (text === null) {
          return;
        }
        var parsed = new DOMParser().parseFromString(text, "text/html");
        if (normal(parsed.body.innerHTML) === normal(feed.innerHTML)) {
          return; // unchanged: nothing to announce
        }
        if (state) {
          state.textContent = "";
        }
        feed.replaceChildren.apply(feed, Array.prototype.slice.call(parsed.body.childNodes));
      })
      .catch(function () {
        if (state) {
          state.textContent = "The feed could not be refreshed just now; it will try again.";
        }
      });
  }
  timer = window.setInterval(refresh, 3000);
  document.addEventListener("visibilitychange", refresh);
})();
