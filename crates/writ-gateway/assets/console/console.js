// The writ console's only script: asks before a form marked data-confirm is sent
// (stopping agents), runs the passkey prompts, and refreshes the live pages. Every page
// works without it but for passkeys.
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// Passkeys: the enrolment page (form data-passkey="enrol") and the sign-in page's passkey
// form (data-passkey="sign-in") ask the gateway for WebAuthn options, hand them to the
// browser's passkey prompt, and send its answer back; the gateway then opens a session.
(function () {
  var form = document.querySelector("form[data-passkey]");
  if (!form || !window.PublicKeyCredential) {
    return;
  }
  var status = document.getElementById("passkey-status");
  function say(text, failed) {
    status.textContent = text;
    status.hidden = false;
    status.classList.toggle("error", !!failed);
  }
  function bytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) {
      out[i] = raw.charCodeAt(i);
    }
    return out.buffer;
  }
  function text(buffer) {
    if (!buffer) {
      return null;
    }
    var raw = "";
    var view = new Uint8Array(buffer);
    for (var i = 0; i < view.length; i++) {
      raw += String.fromCharCode(view[i]);
    }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function send(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (!response.ok) {
          throw new Error(answer.error || "the gateway refused (" + response.status + ")");
        }
        return answer;
      });
    });
  }
  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: bytes(c.id) };
      if (c.transports) {
        d.transports = c.transports;
      }
      return d;
    });
  }
  function enrol() {
    var base = window.location.pathname.replace(/\/+$/, "");
    return send(base + "/options", {}).then(function (begun) {
      var options = begun.options.publicKey;
      options.challenge = bytes(options.challenge);
      options.user.id = bytes(options.user.id);
      options.excludeCredentials = descriptors(options.excludeCredentials);
      return navigator.credentials.create({ publicKey: options }).then(function (credential) {
        return send(base + "/finish", {
          ceremony: begun.ceremony,
          credential: {
            id: credential.id,
            rawId: text(credential.rawId),
            type: credential.type,
            response: {
              attestationObject: text(credential.response.attestationObject),
              clientDataJSON: text(credential.response.clientDataJSON)
            }
          }
        });
      });
    });
  }
  function signIn() {
    var who = {
      name: document.getElementById("passkey-name").value,
      tenant: document.getElementById("passkey-tenant").value
    };
    return send("/console/passkey/options", who).then(function (begun) {
      var options = begun.options.publicKey;
      options.challenge = bytes(options.challenge);
      options.allowCredentials = descriptors(options.allowCredentials);
      return navigator.credentials.get({ publicKey: options }).then(function (credential) {
        var r = credential.response;
        return send("/console/passkey/finish", {
          ceremony: begun.ceremony,
          credential: {
            id: credential.id,
            rawId: text(credential.rawId),
            type: credential.type,
            response: {
              authenticatorData: text(r.authenticatorData),
              clientDataJSON: text(r.clientDataJSON),
              signature: text(r.signature),
              userHandle: text(r.userHandle)
            }
          }
        });
      });
    });
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    say("Waiting for your passkey…", false);
    var ceremony = form.getAttribute("data-passkey") === "enrol" ? enrol : signIn;
    ceremony().then(function (done) {
      say("Done: opening the console…", false);
      window.location.assign(done.next);
    }, function (error) {
      say(error && error.message ? error.message : "The passkey was not accepted.", true);
    });
  });
})();

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
